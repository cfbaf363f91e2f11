//go:build js && wasm

package jsbridge

import (
	"github.com/hack-pad/safejs"

	"chatauth/wasm/sdk"
)

// tabPeers shares one token among the site's tabs: BroadcastChannel
// carries new tokens, Web Locks elect the one tab that refreshes. Where a
// browser lacks either, the tab simply works alone.
type tabPeers struct {
	channel  safejs.Value // BroadcastChannel or undefined
	locks    safejs.Value // navigator.locks or undefined
	lockName string
}

// newPeers joins the site's channel: receive gets the other tabs' tokens,
// loggedOut their logouts.
func newPeers(clientID string, receive func(sdk.Token), loggedOut func()) *tabPeers {
	p := &tabPeers{channel: safejs.Undefined(), locks: safejs.Undefined(), lockName: "chatauth-refresh:" + clientID}
	if bc, err := global.Get("BroadcastChannel"); err == nil && !bc.IsUndefined() {
		if ch, err := bc.New("chatauth:" + clientID); err == nil {
			p.channel = ch
			onMsg, err := safejs.FuncOf(func(_ safejs.Value, args []safejs.Value) any {
				data, err := arg(args, 0).Get("data")
				if err != nil || data.IsUndefined() || data.IsNull() {
					return nil
				}
				if boolean(data, "logout") {
					go loggedOut()
					return nil
				}
				t := sdk.Token{AccessToken: str(data, "accessToken"), TokenType: str(data, "tokenType"), EntityID: str(data, "entityId"),
					Scope: str(data, "scope"), Identified: boolean(data, "identified"),
					ExpiresAt: sdk.Time(num(data, "expiresAt")), ReceivedAt: sdk.Time(num(data, "receivedAt"))}
				go receive(t)
				return nil
			})
			if err == nil {
				ch.Set("onmessage", onMsg) // lives as long as the page
			}
		}
	}
	if nav, err := global.Get("navigator"); err == nil && !nav.IsUndefined() {
		if l, err := nav.Get("locks"); err == nil && !l.IsUndefined() {
			p.locks = l
		}
	}
	return p
}

func (p *tabPeers) Publish(t sdk.Token) {
	if p.channel.IsUndefined() {
		return
	}
	p.channel.Call("postMessage", newObject(map[string]any{
		"accessToken": t.AccessToken, "tokenType": t.TokenType, "entityId": t.EntityID, "scope": t.Scope, "identified": t.Identified,
		"expiresAt": epochMS(t.ExpiresAt), "receivedAt": epochMS(t.ReceivedAt),
	}))
}

func (p *tabPeers) PublishLogout() {
	if !p.channel.IsUndefined() {
		p.channel.Call("postMessage", newObject(map[string]any{"logout": true}))
	}
}

// Exclusive holds the site-wide Web Lock while fn runs.
func (p *tabPeers) Exclusive(fn func() error) error {
	if p.locks.IsUndefined() {
		return fn()
	}
	var ferr error
	cb, err := safejs.FuncOf(func(safejs.Value, []safejs.Value) any {
		// The lock is held until this Promise settles.
		return NewPromise(func() (any, error) {
			ferr = fn()
			return nil, nil
		})
	})
	if err != nil {
		return fn()
	}
	defer cb.Release()
	req, err := p.locks.Call("request", p.lockName, cb)
	if err != nil {
		return fn()
	}
	if _, err := Await(req); err != nil {
		return &sdk.Error{Code: sdk.CodeNetwork, Message: "waiting for another tab: " + err.Error()}
	}
	return ferr
}
