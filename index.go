// Package chatauth holds what must sit at the repository root: the demo
// page index.html, embedded so the server can serve it at "/".
package chatauth

import _ "embed"

// IndexHTML is the demo website served at "/".
//
//go:embed index.html
var IndexHTML []byte
