package config

import (
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := Load(env(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "localhost:8080" || c.Issuer != "http://localhost:8080" || c.DB != "sqlite:data/chatauth.db" ||
		c.AccessTTL != 24*time.Hour || c.RefreshTTL != 720*time.Hour || c.CodeTTL != 5*time.Minute ||
		c.RefreshGrace != 10*time.Second || c.KeyPublishDelay != time.Hour || c.Platform {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestFlagOverridesEnv(t *testing.T) {
	t.Parallel()
	c, err := Load(env(map[string]string{"CHATAUTH_ACCESS_TTL": "1h"}), []string{"--access-ttl=2h", "--platform=true"})
	if err != nil {
		t.Fatal(err)
	}
	if c.AccessTTL != 2*time.Hour || !c.Platform {
		t.Fatalf("got %+v", c)
	}
}

func TestBadValuesNameTheSetting(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env     map[string]string
		args    []string
		mention string
	}{
		{map[string]string{"CHATAUTH_ACCESS_TTL": "tomorrow"}, nil, "CHATAUTH_ACCESS_TTL"},
		{map[string]string{"CHATAUTH_ADDR": "8080"}, nil, "CHATAUTH_ADDR"},
		{map[string]string{"CHATAUTH_ISSUER": "chat.example.com"}, nil, "CHATAUTH_ISSUER"},
		{map[string]string{"CHATAUTH_DB": "mysql://x"}, nil, "CHATAUTH_DB"},
		{map[string]string{"CHATAUTH_PLATFORM": "yes please"}, nil, "CHATAUTH_PLATFORM"},
		{map[string]string{"CHATAUTH_ADMIN_EMAIL": "a@b.c"}, nil, "CHATAUTH_ADMIN_PASSWORD"},
		{map[string]string{"CHATAUTH_SECRET": "short-secret-value"}, nil, "CHATAUTH_SECRET"},
		{map[string]string{"CHATAUTH_DB": "postgres://localhost/x"}, nil, "CHATAUTH_SECRET"},
		{nil, []string{"--code-ttl=0s"}, "CHATAUTH_CODE_TTL"},
		{nil, []string{"--refresh-grace=abc"}, "--refresh-grace"},
	}
	for _, tt := range tests {
		_, err := Load(env(tt.env), tt.args)
		if err == nil || !strings.Contains(err.Error(), tt.mention) {
			t.Errorf("%v %v: err = %v, want it to name %s", tt.env, tt.args, err, tt.mention)
		}
	}
}

func TestSecretNeverEchoed(t *testing.T) {
	t.Parallel()
	_, err := Load(env(map[string]string{"CHATAUTH_SECRET": "hunter2-hunter2"}), nil)
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v", err)
	}
}
