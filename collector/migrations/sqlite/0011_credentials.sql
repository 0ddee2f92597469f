-- Credentials and authority: enrollment tokens that can be listed and revoked, and who created
-- each user (the two-person rule refuses an approver whose account the requester created).
-- Plain SQL both databases run as written; the columns mirror each other for `migrate`.

-- The first characters of the token (`lle_` and 8 hex digits): not secret, enough to name it
-- in a list and to revoke it. Tokens made before this column have none (named by id).
ALTER TABLE enrollment_tokens ADD COLUMN prefix TEXT;
-- The admin who created it; `collector` for the token printed at first start.
ALTER TABLE enrollment_tokens ADD COLUMN created_by TEXT;
-- When an admin revoked it; a revoked token enrolls nobody.
ALTER TABLE enrollment_tokens ADD COLUMN revoked_at BIGINT;

-- The admin who created the account; NULL for the first admin and for accounts made before
-- this column.
ALTER TABLE users ADD COLUMN created_by TEXT;
