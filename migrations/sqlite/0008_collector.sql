-- Online garbage collection. A collection deletes the rows of the blobs it collects and queues their
-- objects here in the same transaction; the objects are deleted from the store after it commits, and a
-- row goes once its objects are gone: a crash between the two loses nothing and deletes nothing twice.
CREATE TABLE gc_queue (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    registry_id INTEGER NOT NULL REFERENCES registries(id) ON DELETE CASCADE,
    object_key  TEXT NOT NULL,
    parts       TEXT,
    size        INTEGER NOT NULL,
    queued_at   INTEGER NOT NULL
);
CREATE INDEX gc_queue_registry ON gc_queue (registry_id);

-- What the collections of each registry did: the last one, and totals.
CREATE TABLE gc_runs (
    registry_id   INTEGER PRIMARY KEY REFERENCES registries(id) ON DELETE CASCADE,
    started_at    INTEGER NOT NULL,
    finished_at   INTEGER NOT NULL,
    links         INTEGER NOT NULL,
    blobs         INTEGER NOT NULL,
    bytes         INTEGER NOT NULL,
    swept_objects INTEGER NOT NULL,
    swept_at      INTEGER NOT NULL DEFAULT 0,
    total_blobs   INTEGER NOT NULL DEFAULT 0,
    total_bytes   INTEGER NOT NULL DEFAULT 0
);

-- The stores of deleted registries, emptied in the background. The remover holds a claim on its row
-- until claimed_until; no new registry may take a location listed here.
CREATE TABLE store_removals (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL,
    storage_url   TEXT,
    claimed_until INTEGER NOT NULL,
    queued_at     INTEGER NOT NULL
);

-- Work one node does at a time across nodes (the collector): held by `holder` until `expires_at`.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
