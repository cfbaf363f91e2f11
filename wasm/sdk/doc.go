// Package sdk is the pure-Go core of chatauth's WebAssembly SDK: parsing
// implicit-grant redirect fragments, generating and checking state, the
// token record, the refresh schedule, single flight, backoff, identified
// visitors and logout, when a DPoP-signed request is sent again (dpop.go),
// and the state machine that ties them together. It
// has no syscall/js and no build tags, so all of it is tested with plain
// `go test`; the browser is reached through the small interfaces in
// auth.go, implemented by wasm/jsbridge.
//
// The JavaScript face (web/dist/chatauth.js) is:
//
//	const auth = await init({ serverUrl, clientId, flow: "cookie" | "redirect", redirectUri, refreshMargin: 300,
//	                          identity: async () => "<identity JWT>" | null, dpop: true });
//	await auth.getToken();        // {accessToken, tokenType: "DPoP" | "Bearer", expiresAt, entityId, scope, identified}
//	auth.hasToken();              // boolean, no network
//	await auth.fetch(path, opts); // adds the token and its DPoP proof; on 401 refreshes once and retries
//	auth.events(path, handlers);  // an event stream read with fetch, reconnecting with fresh tokens
//	auth.handleRedirect(url);     // parses #access_token=… or #error=…, checks iss (issuer.go) and state
//	auth.onTokenChange(cb);       // called after every refresh or invalidation
//	auth.invalidate();            // drop the token; next getToken fetches anew
//	await auth.logout();          // end the session on the server and in every tab
//
// The package imports neither fmt, time, context, encoding/json, net/http
// nor net/url (it has its own millisecond Time and Duration, and the host
// supplies the clock and timers). The browser has fetch and JSON already,
// and every kilobyte here is
// downloaded by every visitor of every site that embeds the widget.
package sdk
