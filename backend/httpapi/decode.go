package httpapi

import (
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
// fields, wrong types and trailing data are 400s whose message names the
// field, so a person can fix the request without reading our code.
func decode(c echo.Context, v any) error {
	r := c.Request()
	dec := json.NewDecoder(r.Body) // frame bounds it to maxBody
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
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
	var big *http.MaxBytesError
	switch {
	case errors.Is(err, io.EOF):
		return apierr.InvalidRequest("request body is empty; send a JSON object")
	case errors.As(err, &big):
		return tooLarge()
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
