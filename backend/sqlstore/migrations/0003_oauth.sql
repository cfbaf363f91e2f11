CREATE TABLE oauth_clients (
  id TEXT PRIMARY KEY,
  org_id BIGINT NOT NULL REFERENCES organizations(id),
  name TEXT NOT NULL,
  company TEXT NOT NULL DEFAULT '',
  client_type TEXT NOT NULL,
  secret_hash {{blob}},
  redirect_uris TEXT NOT NULL,
  scopes TEXT NOT NULL,
  allowed_origins TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX oauth_clients_org ON oauth_clients(org_id, id);

CREATE TABLE oauth_codes (
  hash {{blob}} PRIMARY KEY,
  client_id TEXT NOT NULL REFERENCES oauth_clients(id) ON DELETE CASCADE,
  user_id BIGINT NOT NULL,
  org_id BIGINT NOT NULL,
  redirect_uri TEXT NOT NULL,
  scope TEXT NOT NULL,
  code_challenge TEXT NOT NULL DEFAULT '',
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  used_at BIGINT,
  family_id TEXT NOT NULL DEFAULT ''
);

CREATE TABLE oauth_consents (
  user_id BIGINT NOT NULL,
  client_id TEXT NOT NULL REFERENCES oauth_clients(id) ON DELETE CASCADE,
  scope TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (user_id, client_id, scope)
);
