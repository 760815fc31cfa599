-- The subject of a deleted manifest (a signature's, an SBOM's), so that restoring a deleted manifest
-- brings back the referrers deleted with it. Rows kept before this have none: those referrers are
-- still restored one by one by digest.
ALTER TABLE deleted_manifests ADD COLUMN subject_digest TEXT;
CREATE INDEX deleted_manifests_subject ON deleted_manifests (registry_id, repository, subject_digest)
    WHERE subject_digest IS NOT NULL;
