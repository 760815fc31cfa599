-- What references what is the database's to enforce, so that a collector deleting unreferenced blobs can
-- never race a push into a dangling reference: a manifest's blob reference holds on to the blob's link in
-- its repository (manifest_blobs), an index's reference to a child manifest holds on to that manifest
-- (manifest_children), and a link holds on to the registry's blob row. They replace manifest_refs, whose
-- one column named either kind. Blobs and links also record when they were last touched (pushed,
-- mounted, referenced), which a collection's grace period counts from. The new keys are checked at
-- commit: deleting a repository or a registry removes references, links and blobs through cascades in no
-- set order (SQLite checks at the end of the statement).
ALTER TABLE blobs ADD COLUMN touched_at BIGINT NOT NULL DEFAULT 0;
UPDATE blobs SET touched_at = created_at;

ALTER TABLE repository_blobs ADD COLUMN registry_id BIGINT, ADD COLUMN touched_at BIGINT NOT NULL DEFAULT 0;
UPDATE repository_blobs l SET registry_id = r.registry_id, touched_at = l.created_at
    FROM repositories r WHERE r.id = l.repository_id;
DELETE FROM repository_blobs l
    WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.registry_id = l.registry_id AND b.digest = l.digest);
ALTER TABLE repository_blobs ALTER COLUMN registry_id SET NOT NULL,
    ADD FOREIGN KEY (registry_id, digest) REFERENCES blobs(registry_id, digest) DEFERRABLE INITIALLY DEFERRED;
CREATE INDEX repository_blobs_blob ON repository_blobs (registry_id, digest);

-- The blobs (config, layers) a manifest names.
CREATE TABLE manifest_blobs (
    repository_id   BIGINT NOT NULL,
    manifest_digest TEXT NOT NULL,
    blob_digest     TEXT NOT NULL,
    PRIMARY KEY (repository_id, manifest_digest, blob_digest),
    FOREIGN KEY (repository_id, manifest_digest) REFERENCES manifests(repository_id, digest) ON DELETE CASCADE,
    FOREIGN KEY (repository_id, blob_digest) REFERENCES repository_blobs(repository_id, digest)
        DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX manifest_blobs_blob ON manifest_blobs (repository_id, blob_digest);

-- The manifests an index names.
CREATE TABLE manifest_children (
    repository_id   BIGINT NOT NULL,
    manifest_digest TEXT NOT NULL,
    child_digest    TEXT NOT NULL,
    PRIMARY KEY (repository_id, manifest_digest, child_digest),
    FOREIGN KEY (repository_id, manifest_digest) REFERENCES manifests(repository_id, digest) ON DELETE CASCADE,
    FOREIGN KEY (repository_id, child_digest) REFERENCES manifests(repository_id, digest)
        DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX manifest_children_child ON manifest_children (repository_id, child_digest);

-- References to what the repository does not hold (a link or a child deleted before this) are dropped.
INSERT INTO manifest_blobs (repository_id, manifest_digest, blob_digest)
    SELECT f.repository_id, f.manifest_digest, f.child_digest FROM manifest_refs f
    WHERE f.kind = 'blob' AND EXISTS (SELECT 1 FROM repository_blobs l
        WHERE l.repository_id = f.repository_id AND l.digest = f.child_digest);
INSERT INTO manifest_children (repository_id, manifest_digest, child_digest)
    SELECT f.repository_id, f.manifest_digest, f.child_digest FROM manifest_refs f
    WHERE f.kind = 'manifest' AND EXISTS (SELECT 1 FROM manifests m
        WHERE m.repository_id = f.repository_id AND m.digest = f.child_digest);
DROP TABLE manifest_refs;
