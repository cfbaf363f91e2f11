-- Identified visitors (docs/identity.md). A widget client's identity keys
-- verify the JWTs its site signs for its logged-in users; a visitor so
-- identified is one customer per (organization, widget client, site user
-- id): two clients of one organization may front two user databases,
-- and one's key must not speak for the other's users.
CREATE TABLE identity_keys (
  kid TEXT NOT NULL,
  client_id TEXT NOT NULL REFERENCES oauth_clients(id) ON DELETE CASCADE,
  org_id BIGINT NOT NULL,
  -- secret: an HS256 key chatauth generated (sealed: verifying needs it);
  -- jwk: the site's public key; jwks_uri: the site's key set, fetched.
  kind TEXT NOT NULL,
  alg TEXT NOT NULL DEFAULT '',
  secret {{blob}},
  jwk TEXT NOT NULL DEFAULT '',
  jwks_uri TEXT NOT NULL DEFAULT '',
  created_at BIGINT NOT NULL,
  PRIMARY KEY (client_id, kid)
);
-- Each jti works once: rows live until the token's exp, then the purge
-- drops them (a token past exp is refused before its jti is looked at).
CREATE TABLE identity_jtis (
  client_id TEXT NOT NULL,
  jti TEXT NOT NULL,
  expires_at BIGINT NOT NULL,
  PRIMARY KEY (client_id, jti)
);
CREATE INDEX identity_jtis_expires ON identity_jtis(expires_at);
ALTER TABLE customers ADD COLUMN external_id TEXT;
ALTER TABLE customers ADD COLUMN email_verified INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX customers_external ON customers(org_id, client_id, external_id) WHERE external_id IS NOT NULL;
ALTER TABLE oauth_clients ADD COLUMN identity_required INTEGER NOT NULL DEFAULT 0;
