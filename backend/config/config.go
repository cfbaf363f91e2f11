// Package config reads chatauth's configuration from the environment
// (docs/api.md, "Settings"), with a kebab-case flag of the same name overriding each
// variable, and fails fast with a message that names the bad setting.
package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config is the whole of chatauth's configuration.
type Config struct {
	Addr          string
	Issuer        string
	DB            string
	AdminEmail    string
	AdminPassword string
	AccessTTL     time.Duration
	CustomerTTL   time.Duration
	// IdentityTTL bounds an identified visitor's session (docs/identity.md).
	IdentityTTL     time.Duration
	RefreshTTL      time.Duration
	CodeTTL         time.Duration
	RefreshGrace    time.Duration
	KeyPublishDelay time.Duration
	Platform        bool
	// IdentityPrivateJWKS lets identity keys' jwks_uri point at private
	// and loopback addresses (docs/identity.md).
	IdentityPrivateJWKS bool
	// BackchannelPrivate lets back-channel logout URIs point at private
	// and loopback addresses (docs/oidc.md).
	BackchannelPrivate bool
	// DPoPNonce makes the token endpoints require a server nonce in DPoP
	// proofs (RFC 9449, section 8).
	DPoPNonce        bool
	Secret           string
	LogFormat        string // "text" or "json"
	TrustProxyHeader bool   // take the client IP from X-Forwarded-For
	// Retention (backend/retention): how long a visitor with no
	// conversation and no live session, and an audit event, are kept.
	VisitorRetention time.Duration
	AuditRetention   time.Duration
	// Concurrent event streams per visitor or agent, and per client IP.
	StreamsPerUser int
	StreamsPerIP   int
}

type setting struct {
	env, def, help string
	set            func(*Config, string) error
}

func duration(dst func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return errors.New("not a duration; write it like 24h, 30m or 10s")
		}
		if d < 0 {
			return errors.New("must not be negative")
		}
		*dst(c) = d
		return nil
	}
}

func boolean(dst func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("write true or false")
		}
		*dst(c) = b
		return nil
	}
}

func text(dst func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *dst(c) = v; return nil }
}

var settings = []setting{
	{"CHATAUTH_ADDR", "localhost:8080", "listen address", func(c *Config, v string) error {
		if _, _, err := net.SplitHostPort(v); err != nil {
			return errors.New("write host:port, e.g. localhost:8080 or :8080")
		}
		c.Addr = v
		return nil
	}},
	{"CHATAUTH_ISSUER", "http://localhost:8080", "public base URL; iss of every token", func(c *Config, v string) error {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return errors.New("write an absolute http(s) URL without query or fragment, e.g. https://chat.example.com")
		}
		c.Issuer = strings.TrimRight(v, "/")
		return nil
	}},
	{"CHATAUTH_DB", "sqlite:data/chatauth.db", "sqlite:PATH or postgres://…", func(c *Config, v string) error {
		switch {
		case strings.HasPrefix(v, "sqlite:") && len(v) > len("sqlite:"):
		case strings.HasPrefix(v, "postgres://"), strings.HasPrefix(v, "postgresql://"):
		default:
			return errors.New("write sqlite:PATH (e.g. sqlite:data/chatauth.db) or a postgres:// URL")
		}
		c.DB = v
		return nil
	}},
	{"CHATAUTH_ADMIN_EMAIL", "", "on an empty database, create organization 1 and this admin", text(func(c *Config) *string { return &c.AdminEmail })},
	{"CHATAUTH_ADMIN_PASSWORD", "", "password of that admin", text(func(c *Config) *string { return &c.AdminPassword })},
	{"CHATAUTH_ACCESS_TTL", "24h", "agent access-token lifetime", duration(func(c *Config) *time.Duration { return &c.AccessTTL })},
	{"CHATAUTH_CUSTOMER_TTL", "24h", "customer access-token lifetime", duration(func(c *Config) *time.Duration { return &c.CustomerTTL })},
	{"CHATAUTH_IDENTITY_TTL", "168h", "longest an identified visitor's session lasts before the SDK asks the site for a new identity token", duration(func(c *Config) *time.Duration { return &c.IdentityTTL })},
	{"CHATAUTH_REFRESH_TTL", "720h", "refresh-token lifetime", duration(func(c *Config) *time.Duration { return &c.RefreshTTL })},
	{"CHATAUTH_CODE_TTL", "5m", "authorization-code lifetime", duration(func(c *Config) *time.Duration { return &c.CodeTTL })},
	{"CHATAUTH_REFRESH_GRACE", "10s", "how long a just-rotated refresh token is still honoured", duration(func(c *Config) *time.Duration { return &c.RefreshGrace })},
	{"CHATAUTH_KEY_PUBLISH_DELAY", "1h", "how long a new signing key is published before it signs", duration(func(c *Config) *time.Duration { return &c.KeyPublishDelay })},
	{"CHATAUTH_PLATFORM", "false", "platform mode: enables /platform/api/v1", boolean(func(c *Config) *bool { return &c.Platform })},
	{"CHATAUTH_DPOP_NONCE", "true", "token endpoints require the server's nonce in DPoP proofs (RFC 9449, section 8; the SDK retries once with it)", boolean(func(c *Config) *bool { return &c.DPoPNonce })},
	{"CHATAUTH_BACKCHANNEL_PRIVATE", "false", "let clients' backchannel_logout_uri reach private and loopback addresses (relying parties on chatauth's own network)", boolean(func(c *Config) *bool { return &c.BackchannelPrivate })},
	{"CHATAUTH_IDENTITY_PRIVATE_JWKS", "false", "let identity keys' jwks_uri reach private and loopback addresses (a site on chatauth's own network)", boolean(func(c *Config) *bool { return &c.IdentityPrivateJWKS })},
	{"CHATAUTH_SECRET", "", "master secret (at least 32 characters); generated and stored beside the SQLite database when unset", text(func(c *Config) *string { return &c.Secret })},
	{"CHATAUTH_LOG_FORMAT", "text", "log format: text or json", func(c *Config, v string) error {
		if v != "text" && v != "json" {
			return errors.New("write text or json")
		}
		c.LogFormat = v
		return nil
	}},
	{"CHATAUTH_TRUST_PROXY", "false", "take the client IP from X-Forwarded-For (only behind a proxy you run)", boolean(func(c *Config) *bool { return &c.TrustProxyHeader })},
	{"CHATAUTH_VISITOR_RETENTION", "720h", "a visitor with no conversation and no live session is deleted once unchanged this long (at least 24h)", duration(func(c *Config) *time.Duration { return &c.VisitorRetention })},
	{"CHATAUTH_AUDIT_RETENTION", "8760h", "audit events are deleted after this long (at least 24h)", duration(func(c *Config) *time.Duration { return &c.AuditRetention })},
	{"CHATAUTH_STREAMS_PER_USER", "20", "concurrent event streams per visitor or agent (tabs and devices)", count(func(c *Config) *int { return &c.StreamsPerUser })},
	{"CHATAUTH_STREAMS_PER_IP", "500", "concurrent event streams per client address (an office behind one NAT shares one; at least 200 is advised)", count(func(c *Config) *int { return &c.StreamsPerIP })},
}

// count reads a whole number from 1 to 1,000,000.
func count(dst func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 1 || n > 1_000_000 {
			return errors.New("write a whole number from 1 to 1000000")
		}
		*dst(c) = n
		return nil
	}
}

// flagName turns CHATAUTH_ACCESS_TTL into access-ttl.
func flagName(env string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(env, "CHATAUTH_")), "_", "-")
}

// Load reads the environment through getenv and lets args (flags such as
// --access-ttl=1h) override it. The error names the variable or flag and
// says what a valid value looks like; it never repeats a secret's value.
func Load(getenv func(string) string, args []string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("chatauth", flag.ContinueOnError)
	fs.SetOutput(new(strings.Builder))
	flags := map[string]*string{}
	for _, s := range settings {
		flags[s.env] = fs.String(flagName(s.env), "", s.help)
	}
	if err := fs.Parse(args); err != nil {
		return c, fmt.Errorf("command line: %w (run with --help for the list)", err)
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, s := range settings {
		v, source := getenv(s.env), s.env
		if given[flagName(s.env)] {
			v, source = *flags[s.env], "--"+flagName(s.env)
		}
		if v == "" {
			v, source = s.def, s.env+" (default)"
		}
		if v == "" {
			continue
		}
		if err := s.set(&c, v); err != nil {
			shown := strconv.Quote(v)
			if strings.Contains(s.env, "SECRET") || strings.Contains(s.env, "PASSWORD") {
				shown = "(hidden)"
			}
			return c, fmt.Errorf("%s = %s: %w", source, shown, err)
		}
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return c, c.check()
}

func (c *Config) check() error {
	if (c.AdminEmail == "") != (c.AdminPassword == "") {
		return errors.New("CHATAUTH_ADMIN_EMAIL and CHATAUTH_ADMIN_PASSWORD go together: set both or neither")
	}
	if c.AdminEmail != "" && !strings.Contains(c.AdminEmail, "@") {
		return fmt.Errorf("CHATAUTH_ADMIN_EMAIL = %q: not an email address", c.AdminEmail)
	}
	if c.AdminPassword != "" && len(c.AdminPassword) < 8 {
		return errors.New("CHATAUTH_ADMIN_PASSWORD: use at least 8 characters")
	}
	if c.Secret != "" && len(c.Secret) < 32 {
		return errors.New("CHATAUTH_SECRET: use at least 32 characters (e.g. the output of `openssl rand -hex 32`)")
	}
	if c.Secret == "" && !c.SQLite() {
		return errors.New("CHATAUTH_SECRET: required with PostgreSQL, so every server process shares it; generate one with `openssl rand -hex 32`")
	}
	for name, d := range map[string]time.Duration{"CHATAUTH_ACCESS_TTL": c.AccessTTL, "CHATAUTH_CUSTOMER_TTL": c.CustomerTTL, "CHATAUTH_IDENTITY_TTL": c.IdentityTTL, "CHATAUTH_REFRESH_TTL": c.RefreshTTL, "CHATAUTH_CODE_TTL": c.CodeTTL} {
		if d < time.Second {
			return fmt.Errorf("%s: must be at least 1s", name)
		}
	}
	for name, d := range map[string]time.Duration{"CHATAUTH_VISITOR_RETENTION": c.VisitorRetention, "CHATAUTH_AUDIT_RETENTION": c.AuditRetention} {
		if d < 24*time.Hour {
			return fmt.Errorf("%s = %s: must be at least 24h; write it like 720h for 30 days", name, d)
		}
	}
	return nil
}

// SQLite reports whether the database is the embedded SQLite file.
func (c *Config) SQLite() bool { return strings.HasPrefix(c.DB, "sqlite:") }

// SQLitePath is the file path of a sqlite: DB setting.
func (c *Config) SQLitePath() string { return strings.TrimPrefix(c.DB, "sqlite:") }

// DBKind names the database for the start-up log line.
func (c *Config) DBKind() string {
	if c.SQLite() {
		return "sqlite"
	}
	return "postgres"
}

// Usage lists every setting, its default and meaning, for --help.
func Usage() string {
	var b strings.Builder
	b.WriteString("chatauth: configuration (environment variable, or the flag in brackets):\n")
	for _, s := range settings {
		def := s.def
		if def == "" {
			def = "unset"
		}
		fmt.Fprintf(&b, "  %-28s [--%s] default %s\n      %s\n", s.env, flagName(s.env), def, s.help)
	}
	return b.String()
}
