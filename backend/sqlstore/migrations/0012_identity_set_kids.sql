-- The kids of a site's key set (a jwks_uri identity key) that signed
-- visitors in, per identity key record. After each fetch of a set, the
-- process that fetched it ends the sessions of the recorded kids the set
-- no longer holds (docs/identity.md), whether or not it held the old set:
-- the database, not a process's memory, knows what was signed in.
-- seen_at is the last sign-in with the kid, rewritten at most every 10
-- minutes (sqlstore.DB.SawSetKID). A kid gone from its set is forgotten
-- once unseen for an hour (ForgetSetKIDs), so the table holds only the
-- kids a set holds now and those removed in the last hour.
CREATE TABLE identity_set_kids (
  client_id TEXT NOT NULL,
  record TEXT NOT NULL,
  kid TEXT NOT NULL,
  seen_at BIGINT NOT NULL,
  PRIMARY KEY (client_id, record, kid),
  FOREIGN KEY (client_id, record) REFERENCES identity_keys(client_id, kid) ON DELETE CASCADE
);
-- The records at a uri, looked up after each fetch of its set.
CREATE INDEX identity_keys_jwks_uri ON identity_keys(jwks_uri) WHERE jwks_uri <> '';
-- The kids of the sessions that live now, read from their parents
-- (identity:<client>:<record>/<kid>, sqlstore.IdentityParent of
-- identity.SetKey), so the sessions signed in before this table existed
-- end with their key too. By client (the refresh_families_client index),
-- once, at the upgrade.
INSERT INTO identity_set_kids (client_id, record, kid, seen_at)
SELECT k.client_id, k.kid, substr(f.parent, length(k.client_id) + length(k.kid) + 12), MAX(f.created_at)
FROM identity_keys k JOIN refresh_families f ON f.client_id = k.client_id
WHERE k.kind = 'jwks_uri' AND f.revoked_at IS NULL
  AND substr(f.parent, 1, length(k.client_id) + length(k.kid) + 11) = 'identity:' || k.client_id || ':' || k.kid || '/'
  AND length(f.parent) > length(k.client_id) + length(k.kid) + 11
GROUP BY k.client_id, k.kid, f.parent;
