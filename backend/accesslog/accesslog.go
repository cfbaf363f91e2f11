// Package accesslog writes the server's one line per HTTP request.
//
// The line is the record slog's TextHandler or JSONHandler would write
// for
//
//	log.LogAttrs(ctx, level, "request", request_id, method, path, status,
//	        bytes, duration, ip)
//
// byte for byte, so the access log and the rest of the log read as one
// stream. Building that record through slog costs about a microsecond a
// request (attribute boxing, a pooled handler state, quoting checks), a
// tenth of what the server spends on a cached bearer check and its
// answer. Lines whose strings are plain printable ASCII, which slog writes
// unquoted and unescaped in both formats, are therefore appended here
// directly; every other line (an odd path or client-supplied request id,
// an error) goes through slog itself, so the escaping rules stay slog's.
// A fuzz test holds the two paths to the same bytes.
package accesslog

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Entry is what one line says about one request.
type Entry struct {
	Time      time.Time
	Level     slog.Level
	RequestID string
	Method    string
	Path      string
	Status    int
	Bytes     int64
	Duration  time.Duration
	IP        string
}

// Format names the handler whose output the fast path reproduces.
type Format int

const (
	Text Format = iota // slog.TextHandler
	JSON               // slog.JSONHandler
)

// ParseFormat maps CHATAUTH_LOG_FORMAT to a Format.
func ParseFormat(s string) Format {
	if s == "json" {
		return JSON
	}
	return Text
}

// Logger writes access lines. The zero value is not usable; see New.
type Logger struct {
	slow   *slog.Logger
	out    io.Writer
	format Format
}

// New returns a Logger that writes through log. When out is not nil it
// must be the writer under log's handler, which must be a plain
// slog.NewTextHandler or slog.NewJSONHandler (as format says) with no
// attributes or groups added: plain lines are then written to out
// directly. With out nil every line goes through log.
func New(log *slog.Logger, out io.Writer, format Format) *Logger {
	return &Logger{slow: log, out: out, format: format}
}

var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// Log writes e.
func (l *Logger) Log(ctx context.Context, e *Entry) {
	h := l.slow.Handler()
	if !h.Enabled(ctx, e.Level) {
		return
	}
	// Warnings and errors go through the handler chain, which flushes
	// them at once; an INFO line may wait in the batch.
	if l.out != nil && e.Level == slog.LevelInfo && e.plain() {
		bp := bufs.Get().(*[]byte)
		b := (*bp)[:0]
		if l.format == JSON {
			b = e.appendJSON(b)
		} else {
			b = e.appendText(b)
		}
		l.out.Write(b) // as with slog, a failed log write does not fail the request
		*bp = b
		bufs.Put(bp)
		return
	}
	h.Handle(ctx, e.record())
}

// record is e as slog sees it.
func (e *Entry) record() slog.Record {
	r := slog.NewRecord(e.Time, e.Level, "request", 0)
	r.AddAttrs(
		slog.String("request_id", e.RequestID),
		slog.String("method", e.Method),
		slog.String("path", e.Path),
		slog.Int("status", e.Status),
		slog.Int64("bytes", e.Bytes),
		slog.Duration("duration", e.Duration),
		slog.String("ip", e.IP),
	)
	return r
}

// plain reports whether every string of e is one that slog writes as it
// is in both formats: not empty, and only printable ASCII other than the
// space, '"', '\\' and '='. The time must have a four-digit year, which
// slog's JSON handler otherwise reports as an error.
func (e *Entry) plain() bool {
	if y := e.Time.Year(); y < 1000 || y > 9999 {
		return false
	}
	return Plain(e.RequestID) && Plain(e.Method) && Plain(e.Path) && Plain(e.IP)
}

// Plain reports whether s is written unquoted by slog's text handler and
// unescaped by its JSON handler.
func Plain(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\\' || c == '=' {
			return false
		}
	}
	return true
}

// second is the part of a timestamp that changes once a second: the date
// and time of day ("2006-01-02T15:04:05") and the zone ("Z", "+01:00").
// Formatting them is most of a line's cost; requests share them.
type second struct {
	unix int64
	loc  *time.Location
	head []byte
	zone []byte
}

var lastSecond atomic.Pointer[second]

func secondOf(t time.Time) *second {
	if s := lastSecond.Load(); s != nil && s.unix == t.Unix() && s.loc == t.Location() {
		return s
	}
	// plain() holds the year to four digits, so the head is 19 bytes.
	full := t.AppendFormat(nil, "2006-01-02T15:04:05Z07:00")
	s := &second{unix: t.Unix(), loc: t.Location(), head: full[:19], zone: full[19:]}
	lastSecond.Store(s)
	return s
}

// appendTime appends t as slog does: in the text format RFC 3339 with
// milliseconds (truncated); in JSON RFC 3339 with nanoseconds, trailing
// zeros dropped (time.RFC3339Nano).
func appendTime(b []byte, t time.Time, format Format) []byte {
	s := secondOf(t)
	b = append(b, s.head...)
	ns := t.Nanosecond()
	if format == Text {
		ms := ns / 1e6
		b = append(b, '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
	} else if ns != 0 {
		var frac [10]byte
		frac[0] = '.'
		for i := 9; i >= 1; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 10
		for frac[n-1] == '0' {
			n--
		}
		b = append(b, frac[:n]...)
	}
	return append(b, s.zone...)
}

func (e *Entry) appendText(b []byte) []byte {
	b = append(b, "time="...)
	b = appendTime(b, e.Time, Text)
	b = append(b, " level="...)
	b = append(b, e.Level.String()...)
	b = append(b, " msg=request request_id="...)
	b = append(b, e.RequestID...)
	b = append(b, " method="...)
	b = append(b, e.Method...)
	b = append(b, " path="...)
	b = append(b, e.Path...)
	b = append(b, " status="...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, " bytes="...)
	b = strconv.AppendInt(b, e.Bytes, 10)
	b = append(b, " duration="...)
	b = append(b, e.Duration.String()...)
	b = append(b, " ip="...)
	b = append(b, e.IP...)
	return append(b, '\n')
}

func (e *Entry) appendJSON(b []byte) []byte {
	b = append(b, `{"time":"`...)
	b = appendTime(b, e.Time, JSON)
	b = append(b, `","level":"`...)
	b = append(b, e.Level.String()...)
	b = append(b, `","msg":"request","request_id":"`...)
	b = append(b, e.RequestID...)
	b = append(b, `","method":"`...)
	b = append(b, e.Method...)
	b = append(b, `","path":"`...)
	b = append(b, e.Path...)
	b = append(b, `","status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, e.Bytes, 10)
	b = append(b, `,"duration":`...)
	b = strconv.AppendInt(b, int64(e.Duration), 10)
	b = append(b, `,"ip":"`...)
	b = append(b, e.IP...)
	return append(b, "\"}\n"...)
}
