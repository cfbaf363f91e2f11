package main

import (
	"encoding/json"
	"strings"
	"testing"

	"chatauth/backend/sqlstore/sqlstoretest"
	"chatauth/backend/token"
)

func TestKeysRotateCommand(t *testing.T) {
	dsn := sqlstoretest.SQLite(t)
	env := func(k string) string {
		return map[string]string{"CHATAUTH_DB": dsn}[k]
	}
	var out, errOut strings.Builder
	if err := run([]string{"keys", "rotate", "agent", "--key-publish-delay=2h"}, env, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	var got []struct{ Family, KID string }
	if err := json.Unmarshal([]byte(out.String()), &got); err != nil || len(got) != 1 || got[0].Family != "agent" || !strings.HasPrefix(got[0].KID, "agent-") {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	if strings.Contains(out.String()+errOut.String(), "PRIVATE") {
		t.Fatal("key material printed")
	}
	// Without a family, every family gets a new key, the ID-token ones
	// included.
	out.Reset()
	if err := run([]string{"keys", "rotate", "--key-publish-delay=2h"}, env, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	got = nil
	if err := json.Unmarshal([]byte(out.String()), &got); err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	var families []string
	for _, k := range got {
		families = append(families, k.Family)
		if !strings.HasPrefix(k.KID, k.Family+"-") {
			t.Errorf("kid %s of family %s", k.KID, k.Family)
		}
	}
	want := make([]string, len(token.Families))
	for i, f := range token.Families {
		want[i] = string(f)
	}
	if strings.Join(families, " ") != strings.Join(want, " ") || !strings.Contains(strings.Join(families, " "), "id_token_eddsa") {
		t.Fatalf("rotated %v, want %v", families, want)
	}
	if err := run([]string{"keys", "rotate", "id_token", "--key-publish-delay=2h"}, env, &out, &errOut); err != nil {
		t.Fatalf("rotate id_token: %v", err)
	}
	if err := run([]string{"keys", "rotate", "nope"}, env, &out, &errOut); err == nil || !strings.Contains(err.Error(), "id_token_eddsa") {
		t.Fatalf("unknown family: %v", err)
	}
}

func TestBadConfigurationNamesTheVariable(t *testing.T) {
	env := func(k string) string {
		return map[string]string{"CHATAUTH_ACCESS_TTL": "a day"}[k]
	}
	err := run(nil, env, new(strings.Builder), new(strings.Builder))
	if err == nil || !strings.Contains(err.Error(), "CHATAUTH_ACCESS_TTL") {
		t.Fatalf("err = %v", err)
	}
	if err := run([]string{"frobnicate"}, env, new(strings.Builder), new(strings.Builder)); err == nil || !strings.Contains(err.Error(), "help") {
		t.Fatalf("unknown command: %v", err)
	}
}

func TestPlatformTokenCommand(t *testing.T) {
	dsn := sqlstoretest.SQLite(t)
	env := func(on string) func(string) string {
		return func(k string) string {
			return map[string]string{"CHATAUTH_DB": dsn, "CHATAUTH_PLATFORM": on}[k]
		}
	}
	if err := run([]string{"platform-token", "create", "provisioner"}, env("false"), new(strings.Builder), new(strings.Builder)); err == nil || !strings.Contains(err.Error(), "CHATAUTH_PLATFORM") {
		t.Fatalf("platform mode off: %v", err)
	}
	var out strings.Builder
	if err := run([]string{"platform-token", "create", "provisioner"}, env("true"), &out, new(strings.Builder)); err != nil {
		t.Fatal(err)
	}
	var got struct{ Name, Token string }
	if err := json.Unmarshal([]byte(out.String()), &got); err != nil || got.Name != "provisioner" || !strings.HasPrefix(got.Token, "cpl_") {
		t.Fatalf("output %q: %v", out.String(), err)
	}
}
