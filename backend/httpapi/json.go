package httpapi

import (
	"encoding/json"
	"sync"

	"github.com/labstack/echo/v4"
)

// jsonSerializer is Echo's default without HTML escaping, so messages such
// as "Bearer <access token>" read as written instead of \u003c…\u003e.
type jsonSerializer struct{ echo.DefaultJSONSerializer }

func (jsonSerializer) Serialize(c echo.Context, i any, indent string) error {
	enc := json.NewEncoder(c.Response())
	enc.SetEscapeHTML(false)
	if indent != "" {
		enc.SetIndent("", indent)
	}
	return enc.Encode(i)
}

// jsonAppender is an answer that writes its own JSON when it can (ok),
// byte for byte what jsonSerializer would write, and otherwise leaves it
// to jsonSerializer.
type jsonAppender interface {
	appendJSON(b []byte) (_ []byte, ok bool)
}

var (
	jsonBufs        = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}
	jsonContentType = []string{echo.MIMEApplicationJSON}
)

// writeJSON answers v with status code, as c.JSON would.
func writeJSON(c echo.Context, code int, v jsonAppender) error {
	bp := jsonBufs.Get().(*[]byte)
	defer jsonBufs.Put(bp)
	b, ok := v.appendJSON((*bp)[:0])
	*bp = b
	if !ok || (c.Request().URL.RawQuery != "" && c.QueryParams().Has("pretty")) {
		return c.JSON(code, v)
	}
	w := c.Response()
	// Assigned, not Set: the key is canonical already, and net/http
	// never modifies a header's values, so one slice serves every answer.
	if _, set := w.Header()[echo.HeaderContentType]; !set {
		w.Header()[echo.HeaderContentType] = jsonContentType
	}
	w.WriteHeader(code)
	_, err := w.Write(b)
	return err
}

// jsonPlain reports whether encoding/json writes s between its quotes as
// it is (HTML escaping off): printable ASCII other than '"' and '\\'.
func jsonPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
