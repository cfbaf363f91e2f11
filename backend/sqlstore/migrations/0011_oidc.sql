-- OpenID Connect (docs/oidc.md). A code carries what its ID token needs:
-- the OIDC scopes (openid, profile, email; apart from the API scopes in
-- scope), the request's nonce, when the user signed in and the browser
-- session (sid) it was signed in with.
ALTER TABLE oauth_codes ADD COLUMN oidc_scope TEXT NOT NULL DEFAULT '';
ALTER TABLE oauth_codes ADD COLUMN nonce TEXT NOT NULL DEFAULT '';
ALTER TABLE oauth_codes ADD COLUMN auth_time BIGINT NOT NULL DEFAULT 0;
ALTER TABLE oauth_codes ADD COLUMN browser_sid TEXT NOT NULL DEFAULT '';
-- The client's OIDC registration.
ALTER TABLE oauth_clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]';
ALTER TABLE oauth_clients ADD COLUMN backchannel_logout_uri TEXT NOT NULL DEFAULT '';
ALTER TABLE oauth_clients ADD COLUMN id_token_alg TEXT NOT NULL DEFAULT '';
-- An OAuth grant (refresh family) made with openid: what its refreshed
-- ID tokens and userinfo answer need, and the browser session it was
-- made in, so logging that session out ends the grant and tells the
-- client (back-channel logout).
CREATE TABLE oidc_grants (
  family_id TEXT PRIMARY KEY,
  client_id TEXT NOT NULL,
  user_id BIGINT NOT NULL,
  browser_sid TEXT NOT NULL,
  oidc_scope TEXT NOT NULL,
  auth_time BIGINT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX oidc_grants_sid ON oidc_grants(browser_sid);
