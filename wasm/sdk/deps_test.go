//go:build !js

package sdk

import (
	"os/exec"
	"strings"
	"testing"
)

// TestWasmDependencies fences what the wasm bundle may contain: every
// kilobyte is downloaded by every visitor of every site with the widget.
// fmt and reflect arrive with github.com/hack-pad/safejs, which the
// project requires; our own packages must not import them.
func TestWasmDependencies(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{join .Imports \",\"}}", "chatauth/wasm/cmd/chatauth")
	cmd.Env = append(cmd.Environ(), "GOOS=js", "GOARCH=wasm")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{"encoding/json", "net/http", "net/url", "crypto/rand", "math/big", "text/template", "html/template", "regexp", "log"}
	ownForbidden := []string{"fmt", "reflect", "os", "crypto/subtle"}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, " ")
		for _, f := range forbidden {
			if pkg == f {
				t.Errorf("the wasm bundle contains %s", f)
			}
		}
		if strings.HasPrefix(pkg, "chatauth/") {
			for _, imp := range strings.Split(imports, ",") {
				for _, f := range ownForbidden {
					if imp == f {
						t.Errorf("%s imports %s; use the browser through safejs instead", pkg, f)
					}
				}
			}
		}
	}
}
