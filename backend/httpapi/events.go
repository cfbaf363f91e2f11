package httpapi

import "sync"

// broker wakes the server-sent-event streams of one process when a
// message is added to a conversation. It carries no data: a woken stream
// reads what is new from the database, so a stream also catches messages
// written by other processes on its periodic poll.
type broker struct {
	mu   sync.Mutex
	subs map[int64]map[chan struct{}]struct{}
}

func newBroker() *broker { return &broker{subs: map[int64]map[chan struct{}]struct{}{}} }

func (b *broker) subscribe(conv int64) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	b.mu.Lock()
	if b.subs[conv] == nil {
		b.subs[conv] = map[chan struct{}]struct{}{}
	}
	b.subs[conv][ch] = struct{}{}
	b.mu.Unlock()
	return ch, func() {
		b.mu.Lock()
		delete(b.subs[conv], ch)
		if len(b.subs[conv]) == 0 {
			delete(b.subs, conv)
		}
		b.mu.Unlock()
	}
}

func (b *broker) notify(conv int64) {
	b.mu.Lock()
	for ch := range b.subs[conv] {
		select {
		case ch <- struct{}{}:
		default: // already due to wake
		}
	}
	b.mu.Unlock()
}
