//go:build js && wasm

// Package jsbridge is the only place the SDK touches JavaScript. Every
// call goes through github.com/hack-pad/safejs, so a JavaScript exception
// comes back as a Go error instead of a panic. Exported functions return
// Promises and do their work on a goroutine: a js.FuncOf callback that
// blocked would deadlock the event loop that fetch needs.
package jsbridge

import (
	"errors"

	"github.com/hack-pad/safejs"

	"chatauth/wasm/sdk"
)

var (
	global   = safejs.Global()
	errorCtr safejs.Value
	promise  safejs.Value
	object   safejs.Value
)

func init() {
	errorCtr, _ = global.Get("Error")
	promise, _ = global.Get("Promise")
	object, _ = global.Get("Object")
}

// jsError makes an Error with a stable code property.
func jsError(err error) safejs.Value {
	code, msg := sdk.CodeInvalidRequest, err.Error()
	// A type assertion, not errors.As: the SDK never wraps its errors, and
	// errors.As would bring reflection into the bundle.
	if e, ok := err.(*sdk.Error); ok {
		code, msg = e.Code, e.Message
	}
	v, jerr := errorCtr.New("chatauth: " + msg)
	if jerr != nil {
		return safejs.Undefined()
	}
	v.Set("code", code)
	return v
}

// NewPromise runs fn on a goroutine and settles a Promise with its result.
func NewPromise(fn func() (any, error)) safejs.Value {
	var resolve, reject safejs.Value
	exec, err := safejs.FuncOf(func(_ safejs.Value, args []safejs.Value) any {
		resolve, reject = args[0], args[1]
		return nil
	})
	if err != nil {
		return safejs.Undefined()
	}
	p, err := promise.New(exec)
	exec.Release()
	if err != nil {
		return safejs.Undefined()
	}
	go func() {
		defer func() {
			if r := recover(); r != nil {
				reject.Invoke(jsError(errors.New("internal error in the SDK")))
			}
		}()
		v, err := fn()
		if err != nil {
			reject.Invoke(jsError(err))
			return
		}
		resolve.Invoke(v)
	}()
	return p
}

// Await waits for a Promise from a goroutine. There is no cancellation:
// everything the SDK awaits (fetch, IndexedDB, a Web Lock) settles on
// its own.
func Await(p safejs.Value) (safejs.Value, error) {
	type result struct {
		v   safejs.Value
		err error
	}
	ch := make(chan result, 1)
	ok, err := safejs.FuncOf(func(_ safejs.Value, args []safejs.Value) any {
		ch <- result{v: arg(args, 0)}
		return nil
	})
	if err != nil {
		return safejs.Undefined(), err
	}
	defer ok.Release()
	fail, err := safejs.FuncOf(func(_ safejs.Value, args []safejs.Value) any {
		msg := "promise rejected"
		if e := arg(args, 0); !e.IsUndefined() && !e.IsNull() {
			if s, err := e.Call("toString"); err == nil {
				msg, _ = s.String()
			}
		}
		ch <- result{err: errors.New(msg)}
		return nil
	})
	if err != nil {
		return safejs.Undefined(), err
	}
	defer fail.Release()
	if _, err := p.Call("then", ok, fail); err != nil {
		return safejs.Undefined(), err
	}
	r := <-ch
	return r.v, r.err
}

func arg(args []safejs.Value, i int) safejs.Value {
	if i < len(args) {
		return args[i]
	}
	return safejs.Undefined()
}

func str(v safejs.Value, prop string) string {
	p, err := v.Get(prop)
	if err != nil || p.Type() != safejs.TypeString {
		return ""
	}
	s, _ := p.String()
	return s
}

func num(v safejs.Value, prop string) float64 {
	p, err := v.Get(prop)
	if err != nil || p.Type() != safejs.TypeNumber {
		return 0
	}
	f, _ := p.Float()
	return f
}

func boolean(v safejs.Value, prop string) bool {
	p, err := v.Get(prop)
	if err != nil || p.Type() != safejs.TypeBoolean {
		return false
	}
	b, _ := p.Bool()
	return b
}

// newObject makes a plain JS object from string/number/bool fields.
func newObject(fields map[string]any) safejs.Value {
	o, err := object.New()
	if err != nil {
		return safejs.Undefined()
	}
	for k, v := range fields {
		o.Set(k, v)
	}
	return o
}

func epochMS(t sdk.Time) float64 { return float64(t) }
