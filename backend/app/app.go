// Package app wires chatauth together from a config.Config: the store, the
// master secret, the key sets, the services and the HTTP server. main and
// the integration tests build the server the same way through it.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"chatauth"
	"chatauth/backend/accesslog"
	"chatauth/backend/agentauth"
	"chatauth/backend/config"
	"chatauth/backend/credential"
	"chatauth/backend/customerauth"
	"chatauth/backend/directory"
	"chatauth/backend/domain"
	"chatauth/backend/dpop"
	"chatauth/backend/egress"
	"chatauth/backend/httpapi"
	"chatauth/backend/hub"
	"chatauth/backend/identity"
	"chatauth/backend/notify"
	"chatauth/backend/oauth"
	"chatauth/backend/refresh"
	"chatauth/backend/retention"
	"chatauth/backend/sqlstore"
	"chatauth/backend/throttle"
	"chatauth/backend/token"
	"chatauth/shared"
)

// App is a running chatauth.
type App struct {
	Cfg         config.Config
	Store       *sqlstore.DB
	Keys        *token.Keys
	Revocations *token.Revocations
	Auth        *agentauth.Service
	OAuth       *oauth.Provider
	Server      *httpapi.Server
	Log         *slog.Logger

	// Purger deletes what no request can use any more (backend/retention).
	Purger *retention.Purger
	// Bus carries new messages, revocations, key rotations and client
	// changes to every process (LISTEN/NOTIFY on PostgreSQL).
	Bus notify.Bus

	stop   context.CancelFunc
	done   chan struct{}
	purged chan struct{} // closed when Purger.Run returns
}

type options struct {
	bcryptCost int
	now        func() time.Time
	accessLog  *accesslog.Logger
}

// Option adjusts what tests need to adjust.
type Option func(*options)

// WithBcryptCost lowers the password-hash cost (tests only: the default is
// bcrypt's).
func WithBcryptCost(n int) Option { return func(o *options) { o.bcryptCost = n } }

// WithAccessLog writes the per-request lines through l (by default they
// go through the app's slog logger).
func WithAccessLog(l *accesslog.Logger) Option { return func(o *options) { o.accessLog = l } }

// WithClock replaces the clock.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// Secret resolves the master secret: CHATAUTH_SECRET, or the generated
// file beside the SQLite database.
func Secret(cfg config.Config) (token.Secret, bool, error) {
	if cfg.Secret != "" {
		return token.NewSecret(cfg.Secret), false, nil
	}
	return token.LoadOrCreateSecretFile(filepath.Join(filepath.Dir(cfg.SQLitePath()), "chatauth.secret"))
}

// Open connects the store and loads the key sets: what every command
// needs, the server and the CLI alike.
func Open(ctx context.Context, cfg config.Config, now func() time.Time) (*sqlstore.DB, *token.Keys, error) {
	db, err := sqlstore.Open(ctx, cfg.DB)
	if err != nil {
		return nil, nil, err
	}
	db.Now = now
	secret, _, err := Secret(cfg)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	keys, err := token.LoadKeys(ctx, db, token.NewSealer(secret), now)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return db, keys, nil
}

// New builds the app and starts its background work (revocation polling,
// key reloads). Close stops it.
func New(ctx context.Context, cfg config.Config, log *slog.Logger, opts ...Option) (*App, error) {
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	db, keys, err := Open(ctx, cfg, o.now)
	if err != nil {
		return nil, err
	}
	a := &App{Cfg: cfg, Store: db, Keys: keys, Revocations: token.NewRevocations(), Log: log, done: make(chan struct{})}
	secret, _, err := Secret(cfg)
	if err != nil {
		db.Close()
		return nil, err
	}
	issuer := token.NewIssuer(keys, cfg.Issuer)
	// The credential core (docs/security.md): one refresh-family
	// implementation, one cascade, one guess throttle, one inspector.
	families := refresh.New(db, a.Revocations, secret, cfg.RefreshTTL, cfg.RefreshGrace, o.now)
	cascade := &credential.Cascade{Store: db, Revocations: a.Revocations}
	guesses := &throttle.Guesses{Guard: &throttle.Guard{Store: db, Now: o.now}, Audit: db}
	a.Auth = &agentauth.Service{
		Store: db, Issuer: issuer, Families: families, Cascade: cascade, Guard: guesses,
		AccessTTL: cfg.AccessTTL, BcryptCost: o.bcryptCost, Now: o.now,
	}
	if err := a.bootstrap(ctx); err != nil {
		db.Close()
		return nil, err
	}
	demo, err := a.demoClient(ctx)
	if err != nil {
		db.Close()
		return nil, err
	}
	agents := token.NewAgentVerifier(keys, cfg.Issuer, a.Revocations.Revoked)
	customers := token.NewCustomerVerifier(keys, cfg.Issuer, a.Revocations.Revoked)
	inspector := &credential.Inspector{Store: db, Agents: agents, Customers: customers, Now: o.now}
	a.OAuth = &oauth.Provider{
		Store: db, Issuer: issuer, Inspector: inspector, Families: families, Cascade: cascade, Guesses: guesses,
		AccessTTL: cfg.AccessTTL, CodeTTL: cfg.CodeTTL, Now: o.now,
		// Back-channel logout posts to URIs admins register: only to
		// public addresses (unless CHATAUTH_BACKCHANNEL_PRIVATE), and
		// following no redirects.
		Backchannel: &oauth.Backchannel{Issuer: issuer, Client: egress.Client(cfg.BackchannelPrivate, "CHATAUTH_BACKCHANNEL_PRIVATE"), Log: log},
	}
	// A browser sign-in ended by any event ends its openid grants and
	// tells their clients (back-channel logout): one rule, in oauth.
	cascade.SessionsEnded = a.OAuth.SessionsEnded
	// A key the site rotated out of its set ends what it signed in, on
	// every process: the kids that sign visitors in are recorded in the
	// database, and each fetch of the set ends the sessions of the
	// recorded kids it lacks. Their kids are forgotten only once ended.
	jwks := identity.NewJWKS(cfg.IdentityPrivateJWKS, o.now)
	jwks.Ledger = db
	jwks.Fetched = func(ctx context.Context, uri string, kids []string) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		gone, err := db.SetKIDsGone(ctx, uri, kids)
		for _, g := range gone {
			err = errors.Join(err, cascade.CredentialEnded(ctx, sqlstore.IdentityParent(g.ClientID, identity.SetKey(g.Record, g.KID)), "key removed from the site's key set"))
		}
		if err == nil {
			err = db.ForgetSetKIDs(ctx, gone)
		}
		if err != nil {
			log.Warn("ending the sessions of keys removed from a key set", "jwks_uri", uri, "err", err)
		}
	}
	a.Server = httpapi.New(httpapi.Deps{
		Store: db, Keys: keys, Auth: a.Auth, Log: log, TrustProxyHeader: cfg.TrustProxyHeader,
		IndexHTML: chatauth.IndexHTML, Agents: agents, Customers: customers, OAuth: a.OAuth, Issuer: cfg.Issuer,
		Sessions: httpapi.NewSessionStore(secret.Derive("session cookie hmac", 32), secret.Derive("session cookie aes", 32), strings.HasPrefix(cfg.Issuer, "https://")),
		CustomerSessions: httpapi.NewCustomerSessionStore(secret.Derive("customer cookie hmac", 32), secret.Derive("customer cookie aes", 32),
			strings.HasPrefix(cfg.Issuer, "https://"), cfg.RefreshTTL),
		CustomerAuth: &customerauth.Service{Store: db, Issuer: issuer, Families: families, Cascade: cascade, TTL: cfg.CustomerTTL, IdentityTTL: cfg.IdentityTTL, Now: o.now},
		DPoP:         &dpop.Checker{Replay: db, NonceKey: secret.Derive("dpop nonce", 32), RequireNonce: cfg.DPoPNonce, Now: o.now},
		Identity:     &identity.Verifier{Store: db, Sealer: token.NewSealer(secret), JWKS: jwks, Now: o.now},
		Creations:    throttle.NewWindow(time.Minute),
		Inspector:    inspector,
		Cascade:      cascade,
		Guesses:      guesses,
		Users:        &directory.Users{Store: db, Hasher: a.Auth, Cascade: cascade},
		Revoked:      a.Revocations.Revoked,
		StreamLimits: hub.Limits{PerOwner: cfg.StreamsPerUser, PerIP: cfg.StreamsPerIP},
		DemoClientID: demo,
		Platform:     cfg.Platform,
		AccessLog:    o.accessLog,
	})
	if err := a.connectBus(ctx); err != nil {
		a.Server.Hub.Close()
		db.Close()
		return nil, err
	}
	bg, stop := context.WithCancel(context.Background())
	a.stop = stop
	go func() {
		defer close(a.done)
		go a.reloadKeys(bg)
		go a.pollWhileDown(bg)
		a.Revocations.Poll(bg, db, 500*time.Millisecond, max(cfg.AccessTTL, cfg.CustomerTTL), log)
	}()
	// Retention: a revoked family stays listed for a minute longer than
	// the poller keeps it; one purger at a time on PostgreSQL (db.TryExclusive).
	a.Purger = &retention.Purger{Store: db, Lock: db, Log: log, Policy: sqlstore.PurgePolicy{
		Grace: cfg.RefreshGrace, RevocationKeep: max(cfg.AccessTTL, cfg.CustomerTTL) + time.Minute,
		CodeKeep: max(sqlstore.DefaultCodeKeep, cfg.CodeTTL), VisitorRetention: cfg.VisitorRetention, AuditRetention: cfg.AuditRetention,
	}}
	a.purged = make(chan struct{})
	go func() { defer close(a.purged); a.Purger.Run(bg) }()
	return a, nil
}

// connectBus subscribes this process to what the others announce. On
// SQLite the bus is in-process; on PostgreSQL it LISTENs, and polling is
// only the fallback while the listening connection is down.
func (a *App) connectBus(ctx context.Context) error {
	if a.Store.Kind() != "postgres" {
		a.Bus = notify.NewLocal()
	} else {
		pg, err := notify.NewPostgres(ctx, a.Cfg.DB, a.Log)
		if err != nil {
			return fmt.Errorf("listen for notifications: %w", err)
		}
		a.Bus = pg
		rev := a.Revocations
		rev.Pushed = pg.Up
		a.Server.SelfNotified = pg.Up
		// No Publish: the store announces every revocation in the
		// transaction that makes it (sqlstore announceRevoked).
		pg.Subscribe(notify.TopicRevocation, func(sid string) { rev.Learn(sid) })
		pg.Subscribe(notify.TopicKeys, func(string) { a.reloadKeysNow() })
		pg.Subscribe(notify.TopicClient, func(id string) { a.Store.ForgetClient(id) })
		pg.OnReconnect(func() {
			rev.Resync()
			a.Server.Hub.NotifyAll()
			a.reloadKeysNow()
			a.Store.ForgetClient("")
		})
	}
	h := a.Server.Hub
	a.Revocations.OnChange = h.Kick
	a.Bus.Subscribe(notify.TopicMessage, func(p string) {
		if conv, err := strconv.ParseInt(p, 10, 64); err == nil {
			h.Notify(conv)
		}
	})
	return nil
}

// pollWhileDown wakes every stream once a second while the bus cannot
// deliver across processes, so a message stored elsewhere still arrives.
func (a *App) pollWhileDown(ctx context.Context) {
	every(ctx, time.Second, func() {
		if !a.Bus.Up() {
			a.Server.Hub.NotifyAll()
		}
	})
}

// every runs fn every d until ctx ends.
func every(ctx context.Context, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

func (a *App) reloadKeysNow() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Keys.Reload(ctx); err != nil {
		a.Log.Warn("reload signing keys failed; will retry", "err", err)
	}
}

func (a *App) bootstrap(ctx context.Context) error {
	if a.Cfg.AdminEmail == "" {
		return nil
	}
	if _, err := a.Store.UserByEmail(ctx, a.Cfg.AdminEmail); err == nil {
		return nil
	}
	hash, err := a.Auth.HashPassword(a.Cfg.AdminPassword)
	if err != nil {
		return fmt.Errorf("CHATAUTH_ADMIN_PASSWORD: %w", err)
	}
	admin := &domain.User{Email: a.Cfg.AdminEmail, Name: "Administrator", Role: shared.RoleAdmin, PasswordHash: hash}
	created, err := a.Store.Bootstrap(ctx, "Default organization", admin)
	if err != nil {
		return err
	}
	if created {
		a.Log.Info("created organization and admin on the empty database", "organization", admin.OrgID, "admin", admin.Email)
	}
	return nil
}

// demoClientName names the public client the demo page at "/" uses.
const demoClientName = "Demo widget"

// demoClient makes sure the first organization exists and has the demo
// page's public client, allowed on the issuer's origin (and its loopback
// twin: localhost and 127.0.0.1 are different origins to a browser), so
// the widget on "/" works on a fresh install.
func (a *App) demoClient(ctx context.Context) (string, error) {
	org, err := a.Store.FirstOrganization(ctx)
	if errors.Is(err, domain.ErrNotFound) {
		o := &domain.Organization{Name: "Default organization"}
		if err := a.Store.CreateOrganization(ctx, o); err != nil {
			return "", err
		}
		org = *o
	} else if err != nil {
		return "", err
	}
	clients, err := a.Store.ListClients(ctx, org.ID)
	if err != nil {
		return "", err
	}
	for _, c := range clients {
		if c.Name == demoClientName && c.OrgID == org.ID {
			return c.ID, nil
		}
	}
	u, err := url.Parse(a.Cfg.Issuer)
	if err != nil {
		return "", err
	}
	origins := []string{u.Scheme + "://" + u.Host}
	for from, to := range map[string]string{"localhost": "127.0.0.1", "127.0.0.1": "localhost"} {
		if u.Hostname() == from {
			twin := u.Scheme + "://" + to
			if u.Port() != "" {
				twin += ":" + u.Port()
			}
			origins = append(origins, twin)
		}
	}
	c := &domain.Client{ID: token.NewID(), OrgID: org.ID, Name: demoClientName, Company: "chatauth", Type: "public",
		Scopes: shared.FirstParty.String(), AllowedOrigins: origins, RedirectURIs: []string{a.Cfg.Issuer + "/"}}
	c.DPoP = c.NewDPoP() // a widget like any new one: its SDK binds the tokens
	if err := a.Store.CreateClient(ctx, c); err != nil {
		return "", err
	}
	a.Log.Info("created the demo page's OAuth client", "client_id", c.ID, "allowed_origins", strings.Join(origins, " "))
	return c.ID, nil
}

// reloadKeys picks up keys rotated by the CLI or another process, and lets
// a key whose publish delay has passed start signing.
func (a *App) reloadKeys(ctx context.Context) {
	every(ctx, 30*time.Second, func() {
		if err := a.Keys.Reload(ctx); err != nil && ctx.Err() == nil {
			a.Log.Warn("reload signing keys failed; will retry", "err", err)
		}
	})
}

// Close ends the event streams (with a retry hint), stops background
// work and closes the store.
func (a *App) Close() error {
	a.Server.Hub.Close()
	a.stop()
	<-a.done
	if pg, ok := a.Bus.(*notify.Postgres); ok {
		pg.Close()
	}
	if a.purged != nil {
		<-a.purged
	}
	return a.Store.Close()
}

// Serve answers HTTP on ln until ctx ends, then shuts down gracefully:
// in-flight requests get up to 10 s to finish.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           a.Server.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.Log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
