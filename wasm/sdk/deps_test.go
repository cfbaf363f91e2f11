//go:build !js

package sdk

import (
	"os/exec"
	"strings"
	"testing"
)

// TestWasmDependencies fences what the wasm bundle may contain: every
// kilobyte is downloaded by every visitor of every site with the widget.
// The bundle's size target (1.15x a bare syscall/js program, gzip) holds
// only while none of these is linked. fmt and reflect used to arrive with
// github.com/hack-pad/safejs; go.mod replaces it with the fmt-free fork
// in wasm/third_party/safejs. time and context alone cost a tenth of the
// bundle, so the core has its own clock types and the bridge uses the
// browser's timers.
func TestWasmDependencies(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "chatauth/wasm/cmd/chatauth")
	cmd.Env = append(cmd.Environ(), "GOOS=js", "GOARCH=wasm")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := map[string]bool{
		"fmt": true, "reflect": true, "os": true, "time": true, "context": true,
		"encoding/json": true, "net/http": true, "net/url": true, "crypto/rand": true, "crypto/subtle": true,
		"math/big": true, "text/template": true, "html/template": true, "regexp": true, "log": true, "log/slog": true,
	}
	for _, pkg := range strings.Fields(string(out)) {
		if forbidden[pkg] {
			t.Errorf("the wasm bundle links %s; reach the browser through safejs instead (see the fence's comment)", pkg)
		}
	}
}
