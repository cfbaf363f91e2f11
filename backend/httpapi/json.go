package httpapi

import (
	"encoding/json"

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
