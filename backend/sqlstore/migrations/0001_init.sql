-- {{pk}}, {{blob}} are filled per dialect; times are Unix milliseconds so
-- both databases compare them the same way.
CREATE TABLE organizations (
  id {{pk}},
  parent_id BIGINT REFERENCES organizations(id),
  name TEXT NOT NULL,
  created_at BIGINT NOT NULL
);

CREATE TABLE users (
  id {{pk}},
  org_id BIGINT NOT NULL REFERENCES organizations(id),
  email TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  role TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  api_token_hash {{blob}} UNIQUE,
  api_token_used_at BIGINT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX users_org ON users(org_id);

CREATE TABLE signing_keys (
  kid TEXT PRIMARY KEY,
  family TEXT NOT NULL,
  alg TEXT NOT NULL,
  public_key {{blob}} NOT NULL,
  private_key {{blob}} NOT NULL,
  created_at BIGINT NOT NULL,
  signs_from BIGINT NOT NULL,
  verify_until BIGINT
);

CREATE TABLE refresh_families (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  subject TEXT NOT NULL,
  org_id BIGINT NOT NULL,
  client_id TEXT NOT NULL DEFAULT '',
  scope TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  revoked_at BIGINT,
  revoke_reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX refresh_families_subject ON refresh_families(kind, subject);
CREATE INDEX refresh_families_revoked ON refresh_families(revoked_at);

CREATE TABLE refresh_tokens (
  hash {{blob}} PRIMARY KEY,
  family_id TEXT NOT NULL REFERENCES refresh_families(id) ON DELETE CASCADE,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  rotated_at BIGINT,
  grace_used INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id);
