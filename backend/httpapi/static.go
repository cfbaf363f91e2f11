package httpapi

import (
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/labstack/echo/v4"

	"chatauth/backend/apierr"
	"chatauth/web"
)

// serveDist serves the SDK bundle under /web/dist/. The wasm goes out as
// application/wasm (instantiateStreaming requires it), brotli or gzip when
// the browser accepts them; the content-hashed bundle may be cached
// forever, everything else is revalidated so a new release is picked up.
// Anyone may load the bundle (it is public), so CORS is open here.
func (s *Server) serveDist(c echo.Context) error {
	name := path.Clean(strings.TrimPrefix(c.Param("*"), "/"))
	if name == "." || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".gz") || strings.HasSuffix(name, ".br") {
		return apierr.NotFound("no such file in /web/dist/")
	}
	fsys, _ := fs.Sub(web.Dist, "dist")
	raw, err := fs.ReadFile(fsys, name)
	if err != nil {
		return apierr.NotFound("no such file in /web/dist/: " + name + " (run ./build.sh to build the SDK bundle)")
	}
	h := c.Response().Header()
	ctype := mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) {
	case ".wasm":
		ctype = "application/wasm"
	case ".js":
		ctype = "text/javascript; charset=utf-8"
	case ".ts":
		ctype = "text/plain; charset=utf-8"
	}
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	h.Set("Content-Type", ctype)
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Add("Vary", "Accept-Encoding")
	if isHashed(name) {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	accept := c.Request().Header.Get("Accept-Encoding")
	for _, enc := range []struct{ token, ext string }{{"br", ".br"}, {"gzip", ".gz"}} {
		if !acceptsEncoding(accept, enc.token) {
			continue
		}
		if z, err := fs.ReadFile(fsys, name+enc.ext); err == nil {
			h.Set("Content-Encoding", enc.token)
			return c.Blob(http.StatusOK, ctype, z)
		}
	}
	return c.Blob(http.StatusOK, ctype, raw)
}

// isHashed reports a content-hashed name such as chatauth.1a2b3c4d5e6f.wasm.
func isHashed(name string) bool {
	parts := strings.Split(name, ".")
	return len(parts) == 3 && len(parts[1]) == 12
}

func acceptsEncoding(header, token string) bool {
	for _, part := range strings.Split(header, ",") {
		p := strings.TrimSpace(part)
		name, params, _ := strings.Cut(p, ";")
		if strings.TrimSpace(name) == token && !strings.Contains(strings.ReplaceAll(params, " ", ""), "q=0") {
			return true
		}
	}
	return false
}

// serveAsset serves one embedded file of web/ (the widget loader, the
// console). They are small and change with releases: revalidated, not
// cached forever.
func (s *Server) serveAsset(name string) echo.HandlerFunc {
	return func(c echo.Context) error {
		raw, err := fs.ReadFile(web.Assets, name)
		if err != nil {
			return apierr.NotFound("no such asset: " + name)
		}
		h := c.Response().Header()
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		ctype := mime.TypeByExtension(path.Ext(name))
		switch path.Ext(name) {
		case ".js":
			ctype = "text/javascript; charset=utf-8"
			// The widget loader is embedded by other sites.
			h.Set("Access-Control-Allow-Origin", "*")
		case ".html":
			ctype = "text/html; charset=utf-8"
			// The console: our own scripts only, never framed.
			h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
			h.Set("X-Frame-Options", "DENY")
			h.Set("Referrer-Policy", "no-referrer")
		}
		return c.Blob(http.StatusOK, ctype, raw)
	}
}

func (s *Server) serveConsoleFile(c echo.Context) error {
	name := path.Base(c.Param("file"))
	if name == "index.html" || strings.HasPrefix(name, ".") {
		return apierr.NotFound("no such file in /console/")
	}
	return s.serveAsset("console/" + name)(c)
}
