// Command chatauth-npm writes the SDK as an npm package, for apps that
// bundle it instead of loading it from their chatauth server: the package
// folder dist/npm/ and its tarball dist/<name>-<version>.tgz (for
// @chatauth/sdk 0.1.0, chatauth-sdk-0.1.0.tgz, the name `npm pack` gives
// it), so `npm install ./chatauth-sdk-0.1.0.tgz` works. ./build.sh runs it
// after chatauth-bundle.
//
//	chatauth-npm -template web/npm -src web/sdk -dist web/dist
//
// The package is the template folder (package.json, which holds the
// version, the README, the npm entry chatauth.js and its types) plus:
//
//	sdk.js        the served SDK, web/sdk/chatauth.js, with its wasm URL
//	              handed to the entry (see npmWasmURL)
//	sdk.d.ts      web/sdk/chatauth.d.ts, whose types the entry re-exports
//	chatauth.wasm the bundle, under a fixed name the entry refers to
//	wasm_exec.js  Go's loader, as served
//
// The tarball is written here rather than by `npm pack` so that the
// default build needs Go alone. It is what npm pack writes (every file
// under package/, mode 0644, npm's fixed timestamp, the files package.json
// lists), byte for byte the same for the same input.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

func main() {
	template := flag.String("template", "web/npm", "folder with the package's own files: package.json, README.md, chatauth.js, chatauth.d.ts")
	src := flag.String("src", "web/sdk", "folder with the served SDK's chatauth.js and chatauth.d.ts")
	dist := flag.String("dist", "web/dist", "folder holding chatauth.wasm and wasm_exec.js; the package goes to its npm/ and the tarball beside it")
	flag.Parse()
	tgz, err := run(*template, *src, *dist)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chatauth-npm:", err)
		os.Exit(1)
	}
	fmt.Println(tgz)
}

// manifest is what this command reads of package.json.
type manifest struct {
	Name    string   `json:"name"`
	Version string   `json:"version"`
	Files   []string `json:"files"`
}

// run writes dist/npm/ and the tarball, and returns the tarball's path.
func run(template, src, dist string) (string, error) {
	raw, err := os.ReadFile(filepath.Join(template, "package.json"))
	if err != nil {
		return "", err
	}
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return "", fmt.Errorf("%s/package.json: %w", template, err)
	}
	if m.Name == "" || m.Version == "" || len(m.Files) == 0 {
		return "", fmt.Errorf("%s/package.json needs name, version and files", template)
	}

	files := map[string][]byte{}
	entries, err := os.ReadDir(template)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(template, e.Name()))
		if err != nil {
			return "", err
		}
		files[e.Name()] = b
	}
	js, err := os.ReadFile(filepath.Join(src, "chatauth.js"))
	if err != nil {
		return "", err
	}
	if files["sdk.js"], err = npmWasmURL(js); err != nil {
		return "", fmt.Errorf("%s/chatauth.js: %w", src, err)
	}
	if files["sdk.d.ts"], err = os.ReadFile(filepath.Join(src, "chatauth.d.ts")); err != nil {
		return "", err
	}
	for _, name := range []string{"chatauth.wasm", "wasm_exec.js"} {
		if files[name], err = os.ReadFile(filepath.Join(dist, name)); err != nil {
			return "", err
		}
	}

	packed, err := packed(m, files)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(dist, "npm")
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return "", err
		}
	}
	tgz, err := tarball(packed, files)
	if err != nil {
		return "", err
	}
	base := tarballName(m)
	// An older version's tarball would be left for someone to install.
	old, _ := filepath.Glob(filepath.Join(dist, strings.TrimSuffix(base, m.Version+".tgz")+"*.tgz"))
	for _, f := range old {
		os.Remove(f)
	}
	out := filepath.Join(dist, base)
	return out, os.WriteFile(out, tgz, 0o644)
}

// servedWasmURL is where the served chatauth.js names its wasm: the hashed
// file chatauth-bundle writes beside it, substituted for __WASM_FILE__,
// with the comment above it.
var servedWasmURL = regexp.MustCompile(`(?m)(?:^//[^\n]*\n)*^const WASM_FILE = "__WASM_FILE__";\nconst wasmURL = new URL\(WASM_FILE, import\.meta\.url\);\n`)

// npmWasm replaces servedWasmURL. The served module's load() fetches
// wasmURL when it first runs, so the npm entry sets it before: to its
// own asset, or to init({ wasmUrl }).
const npmWasm = `// npm: the package entry (chatauth.js) names the wasm before load() runs:
// the package's chatauth.wasm as the app's bundler emitted it, or
// init({ wasmUrl }). Written by backend/cmd/chatauth-npm.
let wasmURL;
export function useWasm(url) {
  wasmURL = url;
}
`

// npmWasmURL turns the served chatauth.js into the package's sdk.js. It
// fails, rather than shipping a package that fetches the wrong file, when
// the served module no longer names its wasm the way servedWasmURL knows.
func npmWasmURL(js []byte) ([]byte, error) {
	if n := len(servedWasmURL.FindAllIndex(js, -1)); n != 1 {
		return nil, fmt.Errorf("want the wasm URL declared once as %q (found %d); backend/cmd/chatauth-npm must learn the new form", "const wasmURL = new URL(WASM_FILE, import.meta.url);", n)
	}
	out := servedWasmURL.ReplaceAllLiteral(js, []byte(npmWasm))
	if bytes.Contains(out, []byte("__WASM_FILE__")) {
		return nil, errors.New("__WASM_FILE__ is used beyond the wasm URL")
	}
	return out, nil
}

// packed lists the files npm pack would put in the tarball: package.json,
// the README and what "files" names, in that order. Every file of the
// package must be among them, and each one named must exist, so a file
// added to the template cannot be left out of the tarball unnoticed.
func packed(m manifest, files map[string][]byte) ([]string, error) {
	names := []string{"package.json"}
	for name := range files {
		if strings.EqualFold(strings.TrimSuffix(name, path.Ext(name)), "readme") {
			names = append(names, name)
		}
	}
	for _, f := range m.Files {
		name := strings.TrimPrefix(f, "./")
		if _, ok := files[name]; !ok {
			return nil, fmt.Errorf("package.json lists %q in files, but the package has no such file", f)
		}
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	for name := range files {
		if !slices.Contains(names, name) {
			return nil, fmt.Errorf("%s is in the package folder but not in package.json's files", name)
		}
	}
	slices.Sort(names[1:])
	return names, nil
}

// npmEpoch is the modification time npm pack gives every entry, so that
// a tarball depends on its contents alone.
var npmEpoch = time.Date(1985, time.October, 26, 8, 15, 0, 0, time.UTC)

func tarball(names []string, files map[string][]byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	for _, name := range names {
		b := files[name]
		hdr := &tar.Header{Name: "package/" + name, Mode: 0o644, Size: int64(len(b)), ModTime: npmEpoch, Typeflag: tar.TypeReg, Format: tar.FormatUSTAR}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(b); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// tarballName is npm pack's name: @scope/name becomes scope-name.
func tarballName(m manifest) string {
	return strings.ReplaceAll(strings.TrimPrefix(m.Name, "@"), "/", "-") + "-" + m.Version + ".tgz"
}
