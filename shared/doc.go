// Package shared holds the vocabulary both halves of chatauth compile
// against: roles, API scopes, the scope claim, the two claim types and the
// permission matrix.
//
// It has no I/O and imports neither fmt nor encoding/json, so the
// WebAssembly SDK can use it without growing the bundle.
package shared
