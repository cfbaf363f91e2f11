package logbuf

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe to read while the timer flushes.
type lockedBuffer struct {
	mu    sync.Mutex
	b     bytes.Buffer
	n     int  // writes
	split bool // a write ended mid-line
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	if len(p) > 0 && p[len(p)-1] != '\n' {
		l.split = true
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) snapshot() (string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String(), l.n
}

func TestBatchesInfoAndFlushesWarnings(t *testing.T) {
	out := &lockedBuffer{}
	w := New(out, 4096)
	log := slog.New(Handler(slog.NewJSONHandler(w, nil), w)).With("svc", "t")
	for range 10 {
		log.Info("request")
	}
	if s, _ := out.snapshot(); s != "" {
		t.Fatalf("info lines written before the interval: %q", s)
	}
	log.Warn("disk almost full")
	s, n := out.snapshot()
	if strings.Count(s, "\n") != 11 || !strings.Contains(s, "disk almost full") {
		t.Fatalf("a warning did not flush the buffer: %q", s)
	}
	if n != 1 {
		t.Fatalf("%d writes for 11 lines, want 1", n)
	}
	log.Info("later")
	deadline := time.Now().Add(5 * Interval)
	for {
		if s, _ := out.snapshot(); strings.Contains(s, "later") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the timer did not flush")
		}
		time.Sleep(10 * time.Millisecond)
	}
	w.Close()
	log.Info("after close")
	if s, _ := out.snapshot(); !strings.Contains(s, "after close") {
		t.Fatal("a line after Close was lost")
	}
}

func TestNeverSplitsALine(t *testing.T) {
	out := &lockedBuffer{}
	w := New(out, 64)
	line := strings.Repeat("x", 40) + "\n"
	for range 5 {
		w.Write([]byte(line))
	}
	w.Close()
	s, _ := out.snapshot()
	if s != strings.Repeat(line, 5) {
		t.Fatalf("got %q", s)
	}
	if out.split {
		t.Fatal("a write to the underlying writer ended mid-line")
	}
	if _, n := out.snapshot(); n < 3 {
		t.Fatalf("%d writes into a 64-byte buffer, want at least 3", n)
	}
}

func BenchmarkWrite(b *testing.B) {
	w := New(io.Discard, 64<<10)
	defer w.Close()
	line := []byte(`{"time":"2026-11-23T12:00:00Z","level":"INFO","msg":"request","path":"/api/v1/token/info","status":200}` + "\n")
	for b.Loop() {
		w.Write(line)
	}
}
