-- Retention (sqlstore.DB.Purge, backend/retention): every purge rule
-- range-scans one of these, so each batch finds its rows without a table
-- scan. Partial indexes leave live rows out: a live refresh token has no
-- rotated_at, most families and credentials have no expires_at.
CREATE INDEX refresh_tokens_expires ON refresh_tokens(expires_at);
-- Families past their hard end and not revoked: revoked_at leads, so
-- that SQLite does not pick refresh_families_revoked for "revoked_at IS
-- NULL", which matches every live family.
CREATE INDEX refresh_families_ended ON refresh_families(revoked_at, expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX oauth_codes_expires ON oauth_codes(expires_at);
CREATE INDEX credentials_expires ON credentials(kind, expires_at) WHERE expires_at IS NOT NULL;
-- Visitors are paged by (updated_at, entity_id), so a purge reads each old
-- visitor once per run however many of them must stay.
CREATE INDEX customers_updated ON customers(updated_at, entity_id);
CREATE INDEX audit_events_created ON audit_events(created_at);
