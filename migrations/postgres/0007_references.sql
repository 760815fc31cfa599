-- What references what is the database's to enforce, so that a collector deleting unreferenced blobs can
-- never race a push into a dangling reference: a manifest's blob reference needs the blob's link in its
-- repository (manifest_refs.blob_digest), and a link needs the registry's blob row. Blobs and links also
-- record when they were last touched (pushed, mounted, read, referenced), which a collection's grace
-- period counts from. The two keys are checked at commit: deleting a repository or a registry removes
-- references, links and blobs through cascades in no set order (SQLite checks at the end of the statement).
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

ALTER TABLE manifest_refs ADD COLUMN blob_digest TEXT;
UPDATE manifest_refs f SET blob_digest = child_digest
    WHERE kind = 'blob' AND EXISTS (SELECT 1 FROM repository_blobs l
        WHERE l.repository_id = f.repository_id AND l.digest = f.child_digest);
ALTER TABLE manifest_refs ADD FOREIGN KEY (repository_id, blob_digest) REFERENCES repository_blobs(repository_id, digest)
    DEFERRABLE INITIALLY DEFERRED;
CREATE INDEX manifest_refs_blob ON manifest_refs (repository_id, blob_digest);
