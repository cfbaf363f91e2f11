package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"chatauth/backend/apierr"
)

// maxBody bounds every JSON body; larger bodies get 413.
const maxBody = 64 << 10

// decode reads the body as one JSON object into v, strictly: unknown
// fields, wrong types, trailing data and text that is not UTF-8 are 400s
// whose message names the field, so a person can fix the request without
// reading our code.
func decode(c echo.Context, v any) error {
	body, err := io.ReadAll(c.Request().Body) // frame bounds it to maxBody
	if err != nil {
		var big *http.MaxBytesError
		if errors.As(err, &big) {
			return tooLarge()
		}
		return apierr.InvalidRequest("the request body could not be read; send it again")
	}
	// RFC 8259 §8.1: JSON text is UTF-8. encoding/json would silently
	// turn every invalid byte into U+FFFD, and the damaged text would be
	// stored or compared; one pass over a valid body costs next to nothing.
	if !utf8.Valid(body) {
		return notUTF8(body)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err = dec.Decode(v)
	if err == nil && holdsNUL(body) {
		// U+0000 is valid JSON but no text of ours holds it, and
		// PostgreSQL refuses it: say so instead of failing later.
		return apierr.InvalidRequest("body: a string holds a NUL character (\\u0000); remove it")
	}
	if err == nil {
		if dec.More() {
			return apierr.InvalidRequest("body holds more than one JSON value; send exactly one object")
		}
		if _, err := dec.Token(); err != io.EOF {
			return apierr.InvalidRequest("body has data after the JSON object; send exactly one object")
		}
		return nil
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return apierr.InvalidRequest("request body is empty; send a JSON object")
	case errors.As(err, &syn):
		return apierr.InvalidRequest("body is not valid JSON (error at byte " + strconv.FormatInt(syn.Offset, 10) + "): " + syn.Error())
	case errors.Is(err, io.ErrUnexpectedEOF):
		return apierr.InvalidRequest("body is not valid JSON: it ends in the middle of a value")
	case errors.As(err, &typ):
		if typ.Field == "" {
			return apierr.InvalidRequest("body must be a JSON object, not " + typ.Value)
		}
		return apierr.InvalidRequest(typ.Field + ": must be " + jsonKind(typ.Type.Kind().String()) + ", not " + typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.TrimPrefix(err.Error(), "json: unknown field ")
		return apierr.InvalidRequest(strings.Trim(name, `"`) + ": unknown field; check its spelling against the API reference")
	default:
		return apierr.InvalidRequest("body could not be read as JSON: " + err.Error())
	}
}

// notUTF8 refuses a body that is not UTF-8, naming the field whose value
// (or name) holds the first invalid byte. It walks the tokens up to that
// byte; only refused bodies pay for the walk. The message never repeats a
// value, which may be a password.
func notUTF8(body []byte) error {
	const fix = ": not valid UTF-8; send text as UTF-8"
	bad := int64(utf8ValidPrefix(body))
	// One frame per open object or array: the key being read, or the
	// index of the element being read.
	type frame struct {
		obj     bool
		wantKey bool
		key     string
		idx     int
	}
	var stack []frame
	path := func() string {
		var b strings.Builder
		for _, f := range stack {
			switch {
			case !f.obj:
				b.WriteString("[" + strconv.Itoa(f.idx) + "]")
			case b.Len() > 0:
				b.WriteString("." + f.key)
			default:
				b.WriteString(f.key)
			}
		}
		return b.String()
	}
	// done marks a value of the innermost container as read.
	done := func() {
		if n := len(stack); n > 0 {
			if stack[n-1].obj {
				stack[n-1].wantKey = true
			} else {
				stack[n-1].idx++
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		isKey := false
		if n := len(stack); n > 0 && stack[n-1].obj && stack[n-1].wantKey {
			_, isKey = tok.(string)
		}
		if dec.InputOffset() > bad {
			// Only a string can hold the byte: elsewhere it is a syntax
			// error, and Token fails first.
			if isKey {
				where := path()
				if where == "" {
					where = "body"
				}
				return apierr.InvalidRequest(where + ": a field name is not valid UTF-8; send text as UTF-8")
			}
			if len(stack) == 0 {
				break
			}
			return apierr.InvalidRequest(path() + fix)
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, frame{obj: true, wantKey: true})
			case '[':
				stack = append(stack, frame{})
			default:
				stack = stack[:len(stack)-1]
				done()
			}
		case string:
			if isKey {
				stack[len(stack)-1].key, stack[len(stack)-1].wantKey = t, false
				continue
			}
			done()
		default:
			done()
		}
	}
	return apierr.InvalidRequest("body is not valid UTF-8 (at byte " + strconv.FormatInt(bad, 10) + "); send JSON as UTF-8")
}

// utf8ValidPrefix is the length of the longest valid UTF-8 prefix of b.
func utf8ValidPrefix(b []byte) int {
	i := 0
	for i < len(b) {
		if b[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return i
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "an object"
	case "int", "int64", "int32", "uint", "uint64", "float64":
		return "a number"
	}
	return "of another type"
}

// field checks are small and named for what they enforce.

func required(name, v string) error {
	if strings.TrimSpace(v) == "" {
		return apierr.InvalidRequest(name + ": required")
	}
	return nil
}

func maxLen(name, v string, n int) error {
	if utf8.RuneCountInString(v) > n {
		return apierr.InvalidRequest(name + ": too long; use at most " + strconv.Itoa(n) + " characters")
	}
	if !utf8.ValidString(v) {
		return apierr.InvalidRequest(name + ": not valid UTF-8")
	}
	return nil
}

// first returns the first non-nil error.
func first(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// holdsNUL reports whether a JSON text escapes U+0000 (\u0000): a
// backslash that is itself escaped ("\\u0000", a backslash and the
// text u0000) does not count.
func holdsNUL(body []byte) bool {
	for i := 0; ; {
		j := bytes.Index(body[i:], []byte(`\u0000`))
		if j < 0 {
			return false
		}
		at := i + j
		n := 0
		for k := at; k >= 0 && body[k] == '\\'; k-- {
			n++
		}
		if n%2 == 1 {
			return true
		}
		i = at + 1
	}
}
