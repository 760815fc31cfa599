-- Web portal sign-ins. The cookie's value is never stored, only its SHA-256. `stamp` says which
-- credentials the session stands on (the operator token's hash, the admin password's fingerprint, the
-- principal's revocation epoch): when they change, the session no longer counts. A registry's sessions
-- go with it.
CREATE TABLE portal_sessions (
    token_hash  TEXT PRIMARY KEY,
    subject     TEXT NOT NULL,
    registry_id BIGINT REFERENCES registries(id) ON DELETE CASCADE,
    stamp       TEXT NOT NULL,
    csrf_token  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX portal_sessions_expiry ON portal_sessions (expires_at);
