-- Long-lived credentials: personal access tokens (kind pat, of a user),
-- agent bots (kind bot) and platform tokens (kind platform, no org).
CREATE TABLE credentials (
  id {{pk}},
  kind TEXT NOT NULL,
  org_id BIGINT,
  user_id BIGINT,
  name TEXT NOT NULL,
  scope TEXT NOT NULL DEFAULT '',
  hash {{blob}} NOT NULL UNIQUE,
  expires_at BIGINT,
  last_used_at BIGINT,
  created_at BIGINT NOT NULL
);
CREATE INDEX credentials_owner ON credentials(kind, org_id, user_id);

CREATE TABLE audit_events (
  id {{pk}},
  org_id BIGINT,
  actor TEXT NOT NULL DEFAULT '',
  event TEXT NOT NULL,
  subject TEXT NOT NULL DEFAULT '',
  detail TEXT NOT NULL DEFAULT '',
  created_at BIGINT NOT NULL
);
CREATE INDEX audit_events_org ON audit_events(org_id, id);
