-- Revocation epochs: every access token carries the epoch of the identity it was issued to, and a token
-- whose epoch is behind the row's is refused. Disabling (or re-enabling) the admin user moves the
-- registry's admin_epoch; resetting a principal's credentials or removing one of its roles moves its
-- auth_epoch.
ALTER TABLE registries ADD COLUMN admin_epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE principals ADD COLUMN auth_epoch BIGINT NOT NULL DEFAULT 0;
