package accesslog

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// handlers are the two formats, each over its own buffer.
func handlers() (text, js *bytes.Buffer, th, jh slog.Handler) {
	text, js = new(bytes.Buffer), new(bytes.Buffer)
	return text, js, slog.NewTextHandler(text, nil), slog.NewJSONHandler(js, nil)
}

// check asserts that Log writes exactly what slog's handler writes for
// the same record, in both formats, whichever path the entry takes.
func check(t *testing.T, e Entry) {
	t.Helper()
	for _, f := range []Format{Text, JSON} {
		want, got := new(bytes.Buffer), new(bytes.Buffer)
		var h slog.Handler = slog.NewTextHandler(want, nil)
		var gh slog.Handler = slog.NewTextHandler(got, nil)
		if f == JSON {
			h, gh = slog.NewJSONHandler(want, nil), slog.NewJSONHandler(got, nil)
		}
		if err := h.Handle(context.Background(), e.record()); err != nil {
			// slog writes its error in the line (a year outside 0–9999);
			// the fast path never takes such a line.
			if e.plain() {
				t.Fatalf("slog failed on a plain entry: %v", err)
			}
		}
		New(slog.New(gh), got, f).Log(context.Background(), &e)
		if got.String() != want.String() {
			t.Fatalf("format %d, plain=%v:\n got %q\nwant %q", f, e.plain(), got, want)
		}
	}
}

func TestSameBytesAsSlog(t *testing.T) {
	t.Parallel()
	base := Entry{Time: time.Date(2026, 12, 1, 13, 26, 40, 123456789, time.UTC), Level: slog.LevelInfo,
		RequestID: "a1b2c3d4e5f6-1z", Method: "GET", Path: "/api/v1/token/info", Status: 200, Bytes: 412, Duration: 1234567 * time.Nanosecond, IP: "127.0.0.1"}
	cases := map[string]func(*Entry){
		"plain":              func(*Entry) {},
		"ipv6":               func(e *Entry) { e.IP = "::1" },
		"whole second":       func(e *Entry) { e.Time = e.Time.Truncate(time.Second) },
		"zone":               func(e *Entry) { e.Time = e.Time.In(time.FixedZone("CET", 3600)) },
		"monotonic":          func(e *Entry) { e.Time = time.Now() },
		"zero duration":      func(e *Entry) { e.Duration = 0 },
		"long duration":      func(e *Entry) { e.Duration = 93 * time.Minute },
		"error level":        func(e *Entry) { e.Level, e.Status = slog.LevelError, 500 },
		"space in path":      func(e *Entry) { e.Path = "/a b" },
		"quote in path":      func(e *Entry) { e.Path = `/a"b` },
		"equals in path":     func(e *Entry) { e.Path = "/a=b" },
		"backslash":          func(e *Entry) { e.Path = `/a\b` },
		"unicode":            func(e *Entry) { e.Path = "/héllo\u2028" },
		"control":            func(e *Entry) { e.RequestID = "x\ny" },
		"empty request id":   func(e *Entry) { e.RequestID = "" },
		"html":               func(e *Entry) { e.Path = "/<script>&" },
		"year 10000":         func(e *Entry) { e.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		"year 999":           func(e *Entry) { e.Time = time.Date(999, 1, 1, 0, 0, 0, 0, time.UTC) },
		"negative duration":  func(e *Entry) { e.Duration = -time.Second },
		"very long path":     func(e *Entry) { e.Path = "/" + strings.Repeat("x", 5000) },
		"status 0 bytes -1":  func(e *Entry) { e.Status, e.Bytes = 0, -1 },
		"client request id":  func(e *Entry) { e.RequestID = "trace-00f067aa0ba902b7" },
		"invalid utf8 bytes": func(e *Entry) { e.Path = "/\xff\xfe" },
	}
	for name, mod := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := base
			mod(&e)
			check(t, e)
		})
	}
}

func FuzzSameBytesAsSlog(f *testing.F) {
	f.Add(int64(1796131600123456789), 0, "a1b2c3-1", "GET", "/api/v1/profile", 200, int64(80), int64(1500000), "127.0.0.1", false)
	f.Add(int64(0), 60, "", "POST", "/a b", 500, int64(0), int64(0), "::1", true)
	f.Add(int64(-1), -330, `x"y`, "PATCH", "/é\u2028", 404, int64(-1), int64(-5), "10.0.0.1", false)
	f.Fuzz(func(t *testing.T, nanos int64, zoneMinutes int, id, method, path string, status int, n, dur int64, ip string, errLevel bool) {
		e := Entry{Time: time.Unix(0, nanos).In(time.FixedZone("", (zoneMinutes%(24*60))*60)), Level: slog.LevelInfo,
			RequestID: id, Method: method, Path: path, Status: status, Bytes: n, Duration: time.Duration(dur), IP: ip}
		if errLevel {
			e.Level = slog.LevelError
		}
		check(t, e)
	})
}

// TestDisabledLevel: a handler that drops INFO drops access lines too.
func TestDisabledLevel(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	h := slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn})
	New(slog.New(h), &out, Text).Log(context.Background(), &Entry{Time: time.Now(), Level: slog.LevelInfo, RequestID: "r", Method: "GET", Path: "/", IP: "127.0.0.1"})
	if out.Len() != 0 {
		t.Fatalf("wrote %q", out.String())
	}
}

func BenchmarkLog(b *testing.B) {
	e := Entry{Time: time.Now(), Level: slog.LevelInfo, RequestID: "a1b2c3d4e5f6-1z", Method: "GET", Path: "/api/v1/token/info", Status: 200, Bytes: 412, Duration: 1234567, IP: "127.0.0.1"}
	for _, f := range []Format{Text, JSON} {
		name := map[Format]string{Text: "text", JSON: "json"}[f]
		var h slog.Handler = slog.NewTextHandler(discard{}, nil)
		if f == JSON {
			h = slog.NewJSONHandler(discard{}, nil)
		}
		b.Run(name+"/direct", func(b *testing.B) {
			l := New(slog.New(h), discard{}, f)
			b.ReportAllocs()
			for b.Loop() {
				l.Log(context.Background(), &e)
			}
		})
		b.Run(name+"/slog", func(b *testing.B) {
			l := New(slog.New(h), nil, f)
			b.ReportAllocs()
			for b.Loop() {
				l.Log(context.Background(), &e)
			}
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// TestSecondCacheKeysOnZone: the cached second is keyed by the instant
// and the zone, so the same second in another zone, or the next second,
// is formatted anew.
func TestSecondCacheKeysOnZone(t *testing.T) {
	base := Entry{Level: slog.LevelInfo, RequestID: "r", Method: "GET", Path: "/", Status: 200, IP: "127.0.0.1"}
	at := time.Date(2026, 12, 1, 23, 59, 59, 999_000_000, time.UTC)
	for _, tm := range []time.Time{
		at, at.In(time.FixedZone("CET", 3600)), at, at.Add(time.Millisecond), at.In(time.FixedZone("X", -90*60)),
		at.Add(time.Millisecond).In(time.FixedZone("CET", 3600)), time.Now(), time.Now().UTC(),
	} {
		e := base
		e.Time = tm
		check(t, e)
	}
}
