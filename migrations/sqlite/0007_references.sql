-- What references what is the database's to enforce, so that a collector deleting unreferenced blobs can
-- never race a push into a dangling reference: a manifest's blob reference needs the blob's link in its
-- repository (manifest_refs.blob_digest), and a link needs the registry's blob row. Blobs and links also
-- record when they were last touched (pushed, mounted, read, referenced), which a collection's grace
-- period counts from. SQLite adds foreign keys only by rebuilding a table.
ALTER TABLE blobs ADD COLUMN touched_at INTEGER NOT NULL DEFAULT 0;
UPDATE blobs SET touched_at = created_at;

CREATE TABLE repository_blobs_new (
    repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    registry_id   INTEGER NOT NULL,
    digest        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    touched_at    INTEGER NOT NULL,
    PRIMARY KEY (repository_id, digest),
    FOREIGN KEY (registry_id, digest) REFERENCES blobs(registry_id, digest)
);
INSERT INTO repository_blobs_new (repository_id, registry_id, digest, created_at, touched_at)
    SELECT l.repository_id, r.registry_id, l.digest, l.created_at, l.created_at
    FROM repository_blobs l JOIN repositories r ON r.id = l.repository_id
    WHERE EXISTS (SELECT 1 FROM blobs b WHERE b.registry_id = r.registry_id AND b.digest = l.digest);
DROP TABLE repository_blobs;
ALTER TABLE repository_blobs_new RENAME TO repository_blobs;
CREATE INDEX repository_blobs_blob ON repository_blobs (registry_id, digest);

CREATE TABLE manifest_refs_new (
    repository_id   INTEGER NOT NULL,
    manifest_digest TEXT NOT NULL,
    child_digest    TEXT NOT NULL,
    kind            TEXT NOT NULL,
    blob_digest     TEXT,                        -- child_digest when kind = 'blob': the link it holds on to
    PRIMARY KEY (repository_id, manifest_digest, child_digest),
    FOREIGN KEY (repository_id, manifest_digest) REFERENCES manifests(repository_id, digest) ON DELETE CASCADE,
    FOREIGN KEY (repository_id, blob_digest) REFERENCES repository_blobs(repository_id, digest)
);
INSERT INTO manifest_refs_new (repository_id, manifest_digest, child_digest, kind, blob_digest)
    SELECT f.repository_id, f.manifest_digest, f.child_digest, f.kind,
           CASE WHEN f.kind = 'blob' AND EXISTS (SELECT 1 FROM repository_blobs l
                WHERE l.repository_id = f.repository_id AND l.digest = f.child_digest) THEN f.child_digest END
    FROM manifest_refs f;
DROP TABLE manifest_refs;
ALTER TABLE manifest_refs_new RENAME TO manifest_refs;
CREATE INDEX manifest_refs_child ON manifest_refs (repository_id, child_digest);
CREATE INDEX manifest_refs_blob ON manifest_refs (repository_id, blob_digest);
