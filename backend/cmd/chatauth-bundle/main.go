// Command chatauth-bundle finishes the SDK bundle in web/dist: it gives
// chatauth.wasm a content-hashed name (cacheable forever), writes gzip and
// brotli variants of every asset, and points chatauth.js at the hashed
// file. ./build.sh runs it after compiling the wasm.
//
//	chatauth-bundle -src web/sdk -dist web/dist
package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/andybalholm/brotli"
)

func main() {
	src := flag.String("src", "web/sdk", "folder with chatauth.js and chatauth.d.ts")
	dist := flag.String("dist", "web/dist", "output folder holding chatauth.wasm and wasm_exec.js")
	report := flag.Bool("report", false, "print raw, gzip and brotli sizes of the files named as arguments, the first against the second")
	flag.Parse()
	if *report {
		if err := sizes(flag.Args()); err != nil {
			fmt.Fprintln(os.Stderr, "chatauth-bundle:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*src, *dist); err != nil {
		fmt.Fprintln(os.Stderr, "chatauth-bundle:", err)
		os.Exit(1)
	}
}

func run(src, dist string) error {
	wasm, err := os.ReadFile(filepath.Join(dist, "chatauth.wasm"))
	if err != nil {
		return err
	}
	old, _ := filepath.Glob(filepath.Join(dist, "chatauth.*.wasm*"))
	for _, f := range old {
		os.Remove(f)
	}
	sum := sha256.Sum256(wasm)
	hashed := "chatauth." + hex.EncodeToString(sum[:6]) + ".wasm"
	if err := os.WriteFile(filepath.Join(dist, hashed), wasm, 0o644); err != nil {
		return err
	}
	js, err := os.ReadFile(filepath.Join(src, "chatauth.js"))
	if err != nil {
		return err
	}
	if !bytes.Contains(js, []byte("__WASM_FILE__")) {
		return fmt.Errorf("%s/chatauth.js has no __WASM_FILE__ placeholder", src)
	}
	js = bytes.ReplaceAll(js, []byte("__WASM_FILE__"), []byte(hashed))
	if err := os.WriteFile(filepath.Join(dist, "chatauth.js"), js, 0o644); err != nil {
		return err
	}
	dts, err := os.ReadFile(filepath.Join(src, "chatauth.d.ts"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dist, "chatauth.d.ts"), dts, 0o644); err != nil {
		return err
	}
	for _, name := range []string{hashed, "chatauth.wasm", "chatauth.js", "wasm_exec.js"} {
		if err := compress(filepath.Join(dist, name)); err != nil {
			return err
		}
	}
	fmt.Println(strings.TrimSpace(hashed))
	return nil
}

func compress(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write(raw)
	if err := zw.Close(); err != nil {
		return err
	}
	var br bytes.Buffer
	bw := brotli.NewWriterLevel(&br, brotli.BestCompression)
	bw.Write(raw)
	if err := bw.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(path+".gz", gz.Bytes(), 0o644); err != nil {
		return err
	}
	return os.WriteFile(path+".br", br.Bytes(), 0o644)
}

func sizes(files []string) error {
	if len(files) != 2 {
		return fmt.Errorf("-report takes two files: the bundle and the baseline")
	}
	var got [2][3]int
	for i, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var gz, br bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
		zw.Write(raw)
		zw.Close()
		bw := brotli.NewWriterLevel(&br, brotli.BestCompression)
		bw.Write(raw)
		bw.Close()
		got[i] = [3]int{len(raw), gz.Len(), br.Len()}
	}
	fmt.Printf("%-28s %12s %12s %12s\n", "", "raw", "gzip", "brotli")
	fmt.Printf("%-28s %12d %12d %12d\n", "chatauth.wasm", got[0][0], got[0][1], got[0][2])
	fmt.Printf("%-28s %12d %12d %12d\n", "bare syscall/js program", got[1][0], got[1][1], got[1][2])
	fmt.Printf("%-28s %11.2fx %11.2fx %11.2fx\n", "ratio", float64(got[0][0])/float64(got[1][0]), float64(got[0][1])/float64(got[1][1]), float64(got[0][2])/float64(got[1][2]))
	return nil
}
