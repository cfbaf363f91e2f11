-- The credential core (docs/security.md).
-- A family's expires_at is a hard end inherited from the credential it
-- was derived from (a visitor vouched for by an expiring agent token
-- cannot outlive that token); NULL means only the refresh lifetime.
ALTER TABLE refresh_families ADD COLUMN expires_at BIGINT;
-- Client-credentials tokens carry "cc_<client>.<cc_epoch>" as their
-- session: bumping the epoch (secret reset, made public, deleted) after
-- revoking that session ends every token the client minted, without a
-- row per token.
ALTER TABLE oauth_clients ADD COLUMN cc_epoch BIGINT NOT NULL DEFAULT 0;
CREATE INDEX refresh_families_client ON refresh_families(client_id);
-- parent names the credential a family was vouched by ("<session id>",
-- "cred:bot:<id>", "cred:pat:<id>", "cred:api:<user id>"): revoking the
-- parent revokes the family.
ALTER TABLE refresh_families ADD COLUMN parent TEXT NOT NULL DEFAULT '';
CREATE INDEX refresh_families_parent ON refresh_families(parent);
-- A family's tokens by when they were spent (live ones, NULL, first): a
-- rotation finds the live ones and drops those spent before the grace
-- window without reading the rest. It serves every lookup by family, so
-- the family-only index goes: each index is written by every rotation.
CREATE INDEX refresh_tokens_spent ON refresh_tokens(family_id, rotated_at);
DROP INDEX refresh_tokens_family;
