// Command chatauth runs the chatauth server and its administration
// commands:
//
//	chatauth [serve] [--flag=value …]      start the server
//	chatauth keys rotate [FAMILY]          add a signing key (every family by default:
//	                                       agent, customer, id_token, id_token_eddsa)
//	chatauth help                          list the configuration
//
// Configuration comes from CHATAUTH_* environment variables; a flag of the
// same name in kebab case (--access-ttl=1h) overrides one.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"chatauth/backend/accesslog"
	"chatauth/backend/app"
	"chatauth/backend/config"
	"chatauth/backend/domain"
	"chatauth/backend/logbuf"
	"chatauth/backend/token"
)

func main() {
	if err := run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "chatauth:", err)
		os.Exit(1)
	}
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(args, getenv, stderr)
	case "keys":
		return keys(args, getenv, stdout)
	case "platform-token":
		return platformToken(args, getenv, stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		fmt.Fprint(stdout, config.Usage())
		return nil
	}
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q; run `chatauth help`", cmd)
}

const usage = `usage:
  chatauth [serve] [--flag=value …]      start the server
  chatauth keys rotate [FAMILY]          add a signing key to FAMILY (agent, customer,
                                         id_token, id_token_eddsa; all of them by default)
  chatauth platform-token create NAME    print a new platform token once (platform mode)
  chatauth help                          this text and the configuration

`

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}

func serve(args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := config.Load(getenv, args)
	if err != nil {
		return err
	}
	// Batched: one write(2) per access-log line was a tenth of the cost
	// of a cheap request. Warnings and errors still go out at once.
	out := logbuf.New(stderr, 64<<10)
	defer out.Close()
	log := slog.New(logbuf.Handler(newLogger(cfg, out).Handler(), out))
	// Access lines that need no quoting skip slog's record building and go
	// straight to out, in the very format newLogger writes.
	access := accesslog.New(log, out, accesslog.ParseFormat(cfg.LogFormat))
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	a, err := app.New(ctx, cfg, log, app.WithAccessLog(access))
	if err != nil {
		return err
	}
	defer a.Close()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("CHATAUTH_ADDR=%s: %w", cfg.Addr, err)
	}
	log.Info("chatauth listening", "addr", ln.Addr().String(), "db", cfg.DBKind(), "issuer", cfg.Issuer, "platform", cfg.Platform, "open_files", openFiles())
	err = a.Serve(ctx, ln)
	log.Info("chatauth stopped")
	return err
}

func keys(args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "rotate" {
		return errors.New("usage: chatauth keys rotate [" + strings.ReplaceAll(familyNames(), ", ", "|") + "]")
	}
	args = args[1:]
	// Every family by default: one left out (the ID-token ones were, when
	// they were added) would sign with the same key forever.
	families := token.Families
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		f, ok := familyNamed(args[0])
		if !ok {
			return fmt.Errorf("unknown key family %q; use one of %s", args[0], familyNames())
		}
		families = []token.Family{f}
		args = args[1:]
	}
	cfg, err := config.Load(getenv, args)
	if err != nil {
		return err
	}
	ctx := context.Background()
	db, ks, err := app.Open(ctx, cfg, time.Now)
	if err != nil {
		return err
	}
	defer db.Close()
	maxTTL := max(cfg.AccessTTL, cfg.CustomerTTL)
	type rotated struct {
		Family    token.Family `json:"family"`
		KID       string       `json:"kid"`
		SignsFrom time.Time    `json:"signs_from"`
	}
	var out []rotated
	for _, f := range families {
		kid, from, err := ks.Rotate(ctx, f, cfg.KeyPublishDelay, maxTTL)
		if err != nil {
			return fmt.Errorf("rotate %s key: %w", f, err)
		}
		out = append(out, rotated{f, kid, from.UTC()})
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func familyNamed(name string) (token.Family, bool) {
	for _, f := range token.Families {
		if string(f) == name {
			return f, true
		}
	}
	return "", false
}

func familyNames() string {
	names := make([]string, len(token.Families))
	for i, f := range token.Families {
		names[i] = string(f)
	}
	return strings.Join(names, ", ")
}

func platformToken(args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) < 2 || args[0] != "create" || strings.HasPrefix(args[1], "-") {
		return errors.New("usage: chatauth platform-token create NAME")
	}
	name := args[1]
	cfg, err := config.Load(getenv, args[2:])
	if err != nil {
		return err
	}
	if !cfg.Platform {
		return errors.New("platform mode is off: set CHATAUTH_PLATFORM=true (for this command and the server)")
	}
	ctx := context.Background()
	db, _, err := app.Open(ctx, cfg, time.Now)
	if err != nil {
		return err
	}
	defer db.Close()
	secret, hash := token.NewOpaque(token.PrefixPlatform)
	if err := db.CreateCredential(ctx, &domain.Credential{Kind: "platform", Name: name, Hash: hash}); err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(map[string]string{"name": name, "token": secret})
}
