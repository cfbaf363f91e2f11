package sdk

import "sync"

// flight runs one call at a time and lets concurrent callers share its
// result, so ten getToken calls during one refresh make one request.
type flight struct {
	mu   sync.Mutex
	call *call
}

type call struct {
	done chan struct{}
	tok  Token
	err  error
}

func (f *flight) do(fn func() (Token, error)) (Token, error) {
	f.mu.Lock()
	if c := f.call; c != nil {
		f.mu.Unlock()
		<-c.done
		return c.tok, c.err
	}
	c := &call{done: make(chan struct{})}
	f.call = c
	f.mu.Unlock()
	c.tok, c.err = fn()
	f.mu.Lock()
	f.call = nil
	f.mu.Unlock()
	close(c.done)
	return c.tok, c.err
}
