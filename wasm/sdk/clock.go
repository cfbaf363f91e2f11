package sdk

// Time is a moment in milliseconds since the Unix epoch, read from the
// host's clock (performance.timeOrigin + performance.now() in browsers:
// monotonic within a page, and comparable between the site's tabs).
//
// The core keeps its own two integer types instead of package time: time
// brings its zone database and formatting into every build that imports
// it, and every kilobyte of the wasm bundle is downloaded by every visitor
// of every site that embeds the widget.
type Time int64

// Duration is a span of milliseconds.
type Duration int64

// Common durations.
const (
	Millisecond Duration = 1
	Second               = 1000 * Millisecond
	Minute               = 60 * Second
	Hour                 = 60 * Minute
)

// Add returns t+d.
func (t Time) Add(d Duration) Time { return t + Time(d) }

// Sub returns t-u.
func (t Time) Sub(u Time) Duration { return Duration(t - u) }

// Before reports whether t is earlier than u.
func (t Time) Before(u Time) bool { return t < u }

// After reports whether t is later than u.
func (t Time) After(u Time) bool { return t > u }

// Seconds returns d in seconds.
func (d Duration) Seconds() float64 { return float64(d) / 1000 }
