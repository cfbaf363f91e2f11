//go:build js && wasm

// Command chatauth is the WebAssembly SDK's entry point: it registers the
// JavaScript API (see package sdk) and then stays alive for the page.
package main

import "chatauth/wasm/jsbridge"

func main() {
	if err := jsbridge.Register(); err != nil {
		panic("chatauth: cannot register the JavaScript API: " + err.Error())
	}
	select {}
}
