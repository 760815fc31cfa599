-- Berth metadata schema (SQLite). Every row belongs to a registry; times are unix seconds.
CREATE TABLE registries (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL,
    name_key      TEXT NOT NULL UNIQUE,          -- lowercased name: registry names are unique case-insensitively
    sku           TEXT NOT NULL DEFAULT 'Basic',
    storage_url   TEXT,                          -- NULL: <data dir>/registries/<name>/
    admin_enabled INTEGER NOT NULL DEFAULT 0,
    tags          TEXT NOT NULL DEFAULT '{}',
    created_at    INTEGER NOT NULL
);

CREATE TABLE repositories (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    registry_id INTEGER NOT NULL REFERENCES registries(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (registry_id, name)
);

-- Committed blobs of a registry's store, and where their bytes are.
CREATE TABLE blobs (
    registry_id INTEGER NOT NULL REFERENCES registries(id) ON DELETE CASCADE,
    digest      TEXT NOT NULL,
    size        INTEGER NOT NULL,
    object_key  TEXT NOT NULL,
    part_sizes  TEXT,                            -- NULL: object_key is one object; else comma-separated part sizes
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (registry_id, digest)
);

-- Which blobs a repository may serve (pushed or mounted there).
CREATE TABLE repository_blobs (
    repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (repository_id, digest)
);

CREATE TABLE manifests (
    repository_id  INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest         TEXT NOT NULL,
    media_type     TEXT NOT NULL,
    artifact_type  TEXT,
    subject_digest TEXT,
    annotations    TEXT,
    size           INTEGER NOT NULL,
    content        BLOB NOT NULL,                -- the bytes exactly as pushed
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (repository_id, digest)
);
CREATE INDEX manifests_subject ON manifests (repository_id, subject_digest);

-- What a manifest points at: 'blob' (config, layers) or 'manifest' (index children).
CREATE TABLE manifest_refs (
    repository_id   INTEGER NOT NULL,
    manifest_digest TEXT NOT NULL,
    child_digest    TEXT NOT NULL,
    kind            TEXT NOT NULL,
    PRIMARY KEY (repository_id, manifest_digest, child_digest),
    FOREIGN KEY (repository_id, manifest_digest) REFERENCES manifests(repository_id, digest) ON DELETE CASCADE
);
CREATE INDEX manifest_refs_child ON manifest_refs (repository_id, child_digest);

CREATE TABLE tags (
    repository_id   INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    manifest_digest TEXT NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (repository_id, name),
    FOREIGN KEY (repository_id, manifest_digest) REFERENCES manifests(repository_id, digest) ON DELETE CASCADE
);

-- An upload in progress: any node can continue it, a restart loses none.
CREATE TABLE upload_sessions (
    id            TEXT PRIMARY KEY,
    registry_id   INTEGER NOT NULL REFERENCES registries(id) ON DELETE CASCADE,
    repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    byte_offset   INTEGER NOT NULL DEFAULT 0,
    chunks        TEXT NOT NULL DEFAULT '',      -- received chunks, 'name:size' comma-separated, in order
    hash_state    BLOB,                          -- sha256 state after byte_offset bytes; NULL: re-hash at commit
    started_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
