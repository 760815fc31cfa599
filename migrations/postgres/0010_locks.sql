-- Locks, the cloud registry's "changeable attributes": whether a repository, a manifest or a tag may be
-- written (pushed to, moved), deleted, read (pulled) and listed. A lock on a repository holds for its
-- manifests and tags, a lock on a manifest for the tags pointing at it.
--
-- The triggers below enforce the write and delete locks inside the transaction of every write that
-- changes content, whichever path makes it (push, mount, untag, manifest or repository delete, retention,
-- a delete cascading from another). Their messages, 'berth lock: <where> <attribute>', tell the server
-- which lock refused. Reads and listings test the read and list columns in their own queries.
ALTER TABLE repositories ADD COLUMN write_enabled BOOLEAN NOT NULL DEFAULT TRUE,
    ADD COLUMN delete_enabled BOOLEAN NOT NULL DEFAULT TRUE,
    ADD COLUMN read_enabled BOOLEAN NOT NULL DEFAULT TRUE,
    ADD COLUMN list_enabled BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE manifests ADD COLUMN write_enabled BOOLEAN NOT NULL DEFAULT TRUE,
    ADD COLUMN delete_enabled BOOLEAN NOT NULL DEFAULT TRUE,
    ADD COLUMN read_enabled BOOLEAN NOT NULL DEFAULT TRUE,
    ADD COLUMN list_enabled BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE tags ADD COLUMN write_enabled BOOLEAN NOT NULL DEFAULT TRUE,
    ADD COLUMN delete_enabled BOOLEAN NOT NULL DEFAULT TRUE,
    ADD COLUMN read_enabled BOOLEAN NOT NULL DEFAULT TRUE,
    ADD COLUMN list_enabled BOOLEAN NOT NULL DEFAULT TRUE;

-- What listings hide: few rows, found without reading every row listed.
CREATE INDEX repositories_unlisted ON repositories (registry_id, name) WHERE NOT list_enabled;
CREATE INDEX manifests_unlisted ON manifests (repository_id, digest) WHERE NOT list_enabled;
CREATE INDEX tags_unlisted ON tags (repository_id, name) WHERE NOT list_enabled;

-- Whether repository `id` has its write lock (`write`) or delete lock (not `write`) set.
CREATE FUNCTION berth_repository_locked(id BIGINT, write BOOLEAN) RETURNS BOOLEAN LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM repositories r WHERE r.id = $1
                   AND NOT CASE WHEN $2 THEN r.write_enabled ELSE r.delete_enabled END)
$$;

CREATE FUNCTION berth_repositories_lock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT OLD.delete_enabled THEN
        RAISE EXCEPTION 'berth lock: repository deleteEnabled';
    END IF;
    RETURN OLD;
END $$;
CREATE TRIGGER repositories_lock BEFORE DELETE ON repositories
    FOR EACH ROW EXECUTE FUNCTION berth_repositories_lock();

-- An upload started in a repository, a blob linked into it (an upload's commit, a mount) write to it.
CREATE FUNCTION berth_repository_written() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF berth_repository_locked(NEW.repository_id, TRUE) THEN
        RAISE EXCEPTION 'berth lock: repository writeEnabled';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER upload_sessions_lock BEFORE INSERT ON upload_sessions
    FOR EACH ROW EXECUTE FUNCTION berth_repository_written();
CREATE TRIGGER repository_blobs_lock BEFORE INSERT ON repository_blobs
    FOR EACH ROW EXECUTE FUNCTION berth_repository_written();

-- In a delete cascading from its repository, the repository's row is already gone.
CREATE FUNCTION berth_manifests_lock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF berth_repository_locked(NEW.repository_id, TRUE) THEN
            RAISE EXCEPTION 'berth lock: repository writeEnabled';
        END IF;
        RETURN NEW;
    END IF;
    IF NOT OLD.delete_enabled THEN
        RAISE EXCEPTION 'berth lock: manifest deleteEnabled';
    END IF;
    IF berth_repository_locked(OLD.repository_id, FALSE) THEN
        RAISE EXCEPTION 'berth lock: repository deleteEnabled';
    END IF;
    RETURN OLD;
END $$;
CREATE TRIGGER manifests_lock BEFORE INSERT OR DELETE ON manifests
    FOR EACH ROW EXECUTE FUNCTION berth_manifests_lock();

-- Moving a tag writes to it and takes it from its manifest; pointing it at the digest it has changes
-- nothing.
CREATE FUNCTION berth_tags_lock() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    writing BOOLEAN := TG_OP <> 'DELETE';
    attribute TEXT := CASE WHEN TG_OP = 'DELETE' THEN 'deleteEnabled' ELSE 'writeEnabled' END;
    tag_locked BOOLEAN;
    manifest_locked BOOLEAN;
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF berth_repository_locked(NEW.repository_id, TRUE) THEN
            RAISE EXCEPTION 'berth lock: repository writeEnabled';
        END IF;
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.manifest_digest = OLD.manifest_digest THEN
        RETURN NEW;
    END IF;
    tag_locked := NOT CASE WHEN writing THEN OLD.write_enabled ELSE OLD.delete_enabled END;
    IF tag_locked THEN
        RAISE EXCEPTION 'berth lock: tag %', attribute;
    END IF;
    manifest_locked := EXISTS (SELECT 1 FROM manifests m WHERE m.repository_id = OLD.repository_id
        AND m.digest = OLD.manifest_digest AND NOT CASE WHEN writing THEN m.write_enabled ELSE m.delete_enabled END);
    IF manifest_locked THEN
        RAISE EXCEPTION 'berth lock: manifest %', attribute;
    END IF;
    IF berth_repository_locked(OLD.repository_id, writing) THEN
        RAISE EXCEPTION 'berth lock: repository %', attribute;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        RETURN NEW;
    END IF;
    RETURN OLD;
END $$;
CREATE TRIGGER tags_lock BEFORE INSERT OR UPDATE OF manifest_digest OR DELETE ON tags
    FOR EACH ROW EXECUTE FUNCTION berth_tags_lock();
