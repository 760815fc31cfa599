-- Identities and tokens (Postgres). Secrets are never stored in plain text: principal passwords as argon2id
-- hashes, admin passwords and signing keys encrypted with the installation key, tokens as SHA-256.
ALTER TABLE registries ADD COLUMN admin_password1 BYTEA;
ALTER TABLE registries ADD COLUMN admin_password2 BYTEA;

CREATE TABLE principals (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id       TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);

CREATE TABLE principal_secrets (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    principal_id BIGINT NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    secret_hash  TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);

-- repo_prefix '' means the whole registry; otherwise the repository and everything below it.
CREATE TABLE role_assignments (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    principal_id BIGINT NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    registry_id  BIGINT NOT NULL REFERENCES registries(id) ON DELETE CASCADE,
    repo_prefix  TEXT NOT NULL DEFAULT '',
    role         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    UNIQUE (principal_id, registry_id, repo_prefix, role)
);

-- subject: 'admin' (the registry's admin user) or 'sp:<appId>'.
CREATE TABLE refresh_tokens (
    token_hash   TEXT PRIMARY KEY,
    registry_id  BIGINT NOT NULL REFERENCES registries(id) ON DELETE CASCADE,
    subject      TEXT NOT NULL,
    principal_id BIGINT REFERENCES principals(id) ON DELETE CASCADE,
    expires_at   BIGINT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX refresh_tokens_subject ON refresh_tokens (registry_id, subject);

CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    private_key BYTEA NOT NULL,
    public_key  BYTEA NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE operator_tokens (
    token_hash TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);

-- The identity that started an upload; only it may continue the upload.
ALTER TABLE upload_sessions ADD COLUMN owner TEXT NOT NULL DEFAULT '';
