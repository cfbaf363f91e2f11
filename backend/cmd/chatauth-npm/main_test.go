package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The served SDK as it is today turns into sdk.js: one wasm URL, handed
// to the entry, and no placeholder left.
func TestNPMWasmURLOnTheServedSDK(t *testing.T) {
	t.Parallel()
	js, err := os.ReadFile(filepath.Join("..", "..", "..", "web", "sdk", "chatauth.js"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := npmWasmURL(js)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"export function useWasm(url)", "fetch(wasmURL)"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("sdk.js lacks %q", want)
		}
	}
	if bytes.Contains(out, []byte("WASM_FILE")) {
		t.Error("sdk.js still names WASM_FILE")
	}
}

func TestNPMWasmURLRefusesAnUnknownForm(t *testing.T) {
	t.Parallel()
	decl := "// c\nconst WASM_FILE = \"__WASM_FILE__\";\nconst wasmURL = new URL(WASM_FILE, import.meta.url);\n"
	for name, js := range map[string]string{
		"renamed":     "const wasmUrl = new URL(\"__WASM_FILE__\", import.meta.url);\n",
		"twice":       decl + decl,
		"placeholder": decl + "const other = \"__WASM_FILE__\";\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := npmWasmURL([]byte(js)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// fixture lays out a template, a served SDK and a dist folder.
func fixture(t *testing.T, files []string, extra ...string) (template, src, dist string) {
	t.Helper()
	root := t.TempDir()
	template, src, dist = filepath.Join(root, "npm"), filepath.Join(root, "sdk"), filepath.Join(root, "dist")
	for _, d := range []string{template, src, dist} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pkg, _ := json.Marshal(map[string]any{"name": "@chatauth/sdk", "version": "1.2.3", "files": files})
	write := func(dir, name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(template, "package.json", string(pkg))
	write(template, "README.md", "# sdk\n")
	write(template, "chatauth.js", "import { init } from \"./sdk.js\";\n")
	for _, name := range extra {
		write(template, name, "x")
	}
	write(src, "chatauth.js", "import \"./wasm_exec.js\";\n\n// hashed\nconst WASM_FILE = \"__WASM_FILE__\";\nconst wasmURL = new URL(WASM_FILE, import.meta.url);\nfetch(wasmURL);\n")
	write(src, "chatauth.d.ts", "export {};\n")
	write(dist, "chatauth.wasm", "\x00asm")
	write(dist, "wasm_exec.js", "globalThis.Go = class {};\n")
	write(dist, "chatauth-sdk-1.0.0.tgz", "an older version")
	return template, src, dist
}

var allFiles = []string{"chatauth.js", "sdk.js", "sdk.d.ts", "chatauth.wasm", "wasm_exec.js"}

func entries(t *testing.T, tgz []byte) []string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Mode != 0o644 || !hdr.ModTime.Equal(npmEpoch) {
			t.Errorf("%s: mode %o, mtime %v; npm pack writes 644 and %v", hdr.Name, hdr.Mode, hdr.ModTime, npmEpoch)
		}
		names = append(names, hdr.Name)
	}
}

// The tarball is named as npm pack names it, holds the package under
// package/, replaces an older version's, and is the same bytes each time.
func TestRunWritesThePackage(t *testing.T) {
	t.Parallel()
	template, src, dist := fixture(t, allFiles)
	out, err := run(template, src, dist)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(out) != "chatauth-sdk-1.2.3.tgz" {
		t.Fatalf("tarball %s", out)
	}
	first, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"package/package.json", "package/README.md", "package/chatauth.js", "package/chatauth.wasm", "package/sdk.d.ts", "package/sdk.js", "package/wasm_exec.js"}
	if got := entries(t, first); !slices.Equal(got, want) {
		t.Fatalf("entries %v, want %v", got, want)
	}
	if _, err := os.Stat(filepath.Join(dist, "chatauth-sdk-1.0.0.tgz")); !os.IsNotExist(err) {
		t.Error("the older version's tarball is still there")
	}
	sdk, err := os.ReadFile(filepath.Join(dist, "npm", "sdk.js"))
	if err != nil || !strings.Contains(string(sdk), "export function useWasm") {
		t.Errorf("dist/npm/sdk.js: %v\n%s", err, sdk)
	}
	if _, err := run(template, src, dist); err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(out)
	if !bytes.Equal(first, second) {
		t.Error("two runs on the same input wrote different tarballs")
	}
}

// A file of the package that "files" leaves out, or a "files" entry the
// package lacks, stops the build instead of shipping without it.
func TestRunRefusesFilesThatDisagree(t *testing.T) {
	t.Parallel()
	for name, f := range map[string]func(t *testing.T) (string, string, string){
		"unlisted": func(t *testing.T) (string, string, string) { return fixture(t, allFiles, "extra.d.ts") },
		"missing": func(t *testing.T) (string, string, string) {
			return fixture(t, append(slices.Clone(allFiles), "chatauth.d.ts"))
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			template, src, dist := f(t)
			if _, err := run(template, src, dist); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
