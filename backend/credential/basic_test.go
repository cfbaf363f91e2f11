package credential

import (
	"encoding/base64"
	"errors"
	"testing"
)

func b64(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }

func TestParsePATBasic(t *testing.T) {
	id, tok, err := ParsePATBasic(b64("12:cap_secret"))
	if err != nil || id != 12 || tok != "cap_secret" {
		t.Fatalf("%d %q %v", id, tok, err)
	}
	for in, want := range map[string]error{
		b64("12%3Acap_secret"): ErrBasicEscaped,
		b64("12%3acap_secret"): ErrBasicEscaped,
		b64("cap_secret"):      ErrBasicNoColon,
		b64("me:cap_secret"):   ErrBasicAccount,
		"Basic !!!":            ErrBasicEncoding,
		"Bearer x":             ErrBasicEncoding,
	} {
		if _, _, err := ParsePATBasic(in); !errors.Is(err, want) {
			t.Errorf("%q: %v, want %v", in, err, want)
		}
	}
}

// FuzzParsePATBasic: never panics; success always means a positive id.
func FuzzParsePATBasic(f *testing.F) {
	for _, s := range []string{b64("1:cap_x"), b64("1%3Acap_x"), "Basic ", "basic YTpi", b64(":"), b64("-1:x")} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		id, _, err := ParsePATBasic(h)
		if err == nil && id <= 0 {
			t.Fatalf("accepted id %d", id)
		}
	})
}
