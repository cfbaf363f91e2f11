-- Sender-constrained tokens (RFC 9449, docs/dpop.md). A family bound to a
-- DPoP key (its RFC 7638 thumbprint) takes its refresh tokens only with a
-- proof of that key, and its access tokens carry it as cnf.jkt.
ALTER TABLE refresh_families ADD COLUMN jkt TEXT NOT NULL DEFAULT '';
-- A client's policy: required (every token bound) or optional.
ALTER TABLE oauth_clients ADD COLUMN dpop TEXT NOT NULL DEFAULT 'optional';
-- Each proof's jti works once per key while its iat is acceptable: rows
-- live that long, then the purge drops them. Shared by every process.
CREATE TABLE dpop_jtis (
  jkt TEXT NOT NULL,
  jti TEXT NOT NULL,
  expires_at BIGINT NOT NULL,
  PRIMARY KEY (jkt, jti)
);
CREATE INDEX dpop_jtis_expires ON dpop_jtis(expires_at);
