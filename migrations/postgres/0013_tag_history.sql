-- Every move and delete of a tag, and every restore: what it pointed at before and after (NULL: it did
-- not exist), who did it and from which client. Written in the transaction of the change; kept as long as
-- the registry. The repository is named, not referenced: the history outlives a deleted repository.
CREATE TABLE tag_history (
    id          BIGSERIAL PRIMARY KEY,
    registry_id BIGINT NOT NULL REFERENCES registries(id) ON DELETE CASCADE,
    repository  TEXT NOT NULL,
    tag         TEXT NOT NULL,
    old_digest  TEXT,
    new_digest  TEXT,
    actor       TEXT NOT NULL,
    client      TEXT,
    at          BIGINT NOT NULL
);
CREATE INDEX tag_history_tag ON tag_history (registry_id, repository, tag, id);

-- Deleted manifests (soft delete): restorable, with the tags they had, for retention.deleted_days, as
-- long as the blobs they name have not been collected.
CREATE TABLE deleted_manifests (
    registry_id BIGINT NOT NULL REFERENCES registries(id) ON DELETE CASCADE,
    repository  TEXT NOT NULL,
    digest      TEXT NOT NULL,
    media_type  TEXT NOT NULL,
    content     BYTEA NOT NULL,
    deleted_at  BIGINT NOT NULL,
    PRIMARY KEY (registry_id, repository, digest)
);
CREATE INDEX deleted_manifests_age ON deleted_manifests (deleted_at);
