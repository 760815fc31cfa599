-- The tags of a manifest: what a manifest's summary lists, and what deleting a manifest cascades to.
-- Without it both read every tag of the repository, per manifest.
CREATE INDEX tags_by_manifest ON tags (repository_id, manifest_digest);

-- The referrers of a subject in digest order, read from the index alone: without the digest in it,
-- SQLite walked the whole repository in digest order to find a subject's few referrers.
DROP INDEX manifests_subject;
CREATE INDEX manifests_subject ON manifests (repository_id, subject_digest, digest);
