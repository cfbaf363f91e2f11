// Package web holds chatauth's browser assets: the SDK bundle in dist/
// (written by ./build.sh; embedded into the server binary when it is
// built after the bundle) and, with the widget issue, the widget and the
// console.
package web

import "embed"

// Dist is web/dist: chatauth.js, chatauth.d.ts, wasm_exec.js and the wasm
// bundle, each with .gz and .br variants.
//
//go:embed all:dist
var Dist embed.FS

// Assets are the committed browser files: the widget loader and the
// developer console.
//
//go:embed widget.js console
var Assets embed.FS
