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

// textTime is slog's text-handler time: RFC 3339 with milliseconds.
const textTime = "2006-01-02T15:04:05.000Z07:00"

func (e *Entry) appendText(b []byte) []byte {
	b = append(b, "time="...)
	b = e.Time.Round(0).AppendFormat(b, textTime)
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
	b = e.Time.Round(0).AppendFormat(b, time.RFC3339Nano)
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
