-- The tags of a manifest, found by digest first. Led by the repository, the index of 0016 also matched a
-- bare `repository_id = ?`, and SQLite (without statistics) chose it over the partial index of hidden
-- tags when filtering a tag listing: every listing then read every tag of the repository twice (2000-tag
-- lists fell from about 1,700 to 960 a second).
DROP INDEX tags_by_manifest;
CREATE INDEX tags_by_manifest ON tags (manifest_digest, repository_id);
