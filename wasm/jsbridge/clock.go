//go:build js && wasm

package jsbridge

import (
	"github.com/hack-pad/safejs"

	"chatauth/wasm/sdk"
)

// The SDK's clock and timers are the browser's: performance.now() is
// monotonic (a changed system clock does not move it), and adding
// performance.timeOrigin makes its readings comparable between the site's
// tabs, which share tokens with their expiry times.
var (
	perf       = safejs.Undefined()
	timeOrigin float64
	dateNow    safejs.Value
)

func init() {
	if p, err := global.Get("performance"); err == nil && p.Type() == safejs.TypeObject {
		perf = p
		timeOrigin = num(p, "timeOrigin")
	}
	if d, err := global.Get("Date"); err == nil {
		dateNow = d
	}
}

func now() sdk.Time {
	if !perf.IsUndefined() && timeOrigin > 0 {
		if v, err := perf.Call("now"); err == nil {
			if f, err := v.Float(); err == nil {
				return sdk.Time(timeOrigin + f)
			}
		}
	}
	v, err := dateNow.Call("now")
	if err != nil {
		return 0
	}
	f, _ := v.Float()
	return sdk.Time(f)
}

// maxTimeout is the largest delay setTimeout honours; longer ones fire
// at once. A later Check re-arms the timer, so clamping is safe.
const maxTimeout = 1<<31 - 1

// afterFunc runs f on a goroutine after d, through setTimeout. The
// returned stop cancels it and reports whether it was still pending.
func afterFunc(d sdk.Duration, f func()) func() bool {
	ms := int64(d)
	if ms < 0 {
		ms = 0
	}
	if ms > maxTimeout {
		ms = maxTimeout
	}
	done := make(chan struct{}, 1)
	done <- struct{}{} // a token: whoever takes it first, timer or stop, wins
	var cb safejs.Func
	cb, err := safejs.FuncOf(func(safejs.Value, []safejs.Value) any {
		select {
		case <-done:
			cb.Release()
			go f()
		default:
		}
		return nil
	})
	if err != nil {
		return func() bool { return false }
	}
	id, err := global.Call("setTimeout", cb, ms)
	if err != nil {
		cb.Release()
		return func() bool { return false }
	}
	return func() bool {
		select {
		case <-done:
			global.Call("clearTimeout", id)
			cb.Release()
			return true
		default:
			return false
		}
	}
}
