-- Locks, the cloud registry's "changeable attributes": whether a repository, a manifest or a tag may be
-- written (pushed to, moved), deleted, read (pulled) and listed. A lock on a repository holds for its
-- manifests and tags, a lock on a manifest for the tags pointing at it.
--
-- The triggers below enforce the write and delete locks inside the transaction of every write that
-- changes content, whichever path makes it (push, mount, untag, manifest or repository delete, retention,
-- a delete cascading from another). Their messages, 'berth lock: <where> <attribute>', tell the server
-- which lock refused. Reads and listings test the read and list columns in their own queries.
ALTER TABLE repositories ADD COLUMN write_enabled INTEGER NOT NULL DEFAULT 1;
ALTER TABLE repositories ADD COLUMN delete_enabled INTEGER NOT NULL DEFAULT 1;
ALTER TABLE repositories ADD COLUMN read_enabled INTEGER NOT NULL DEFAULT 1;
ALTER TABLE repositories ADD COLUMN list_enabled INTEGER NOT NULL DEFAULT 1;
ALTER TABLE manifests ADD COLUMN write_enabled INTEGER NOT NULL DEFAULT 1;
ALTER TABLE manifests ADD COLUMN delete_enabled INTEGER NOT NULL DEFAULT 1;
ALTER TABLE manifests ADD COLUMN read_enabled INTEGER NOT NULL DEFAULT 1;
ALTER TABLE manifests ADD COLUMN list_enabled INTEGER NOT NULL DEFAULT 1;
ALTER TABLE tags ADD COLUMN write_enabled INTEGER NOT NULL DEFAULT 1;
ALTER TABLE tags ADD COLUMN delete_enabled INTEGER NOT NULL DEFAULT 1;
ALTER TABLE tags ADD COLUMN read_enabled INTEGER NOT NULL DEFAULT 1;
ALTER TABLE tags ADD COLUMN list_enabled INTEGER NOT NULL DEFAULT 1;

-- What listings hide: few rows, found without reading every row listed.
CREATE INDEX repositories_unlisted ON repositories (registry_id, name) WHERE NOT list_enabled;
CREATE INDEX manifests_unlisted ON manifests (repository_id, digest) WHERE NOT list_enabled;
CREATE INDEX tags_unlisted ON tags (repository_id, name) WHERE NOT list_enabled;

CREATE TRIGGER repositories_delete_lock BEFORE DELETE ON repositories WHEN NOT OLD.delete_enabled
BEGIN
    SELECT RAISE(ABORT, 'berth lock: repository deleteEnabled');
END;

-- An upload started in a repository, a blob linked into it (an upload's commit, a mount) write to it.
CREATE TRIGGER upload_sessions_insert_lock BEFORE INSERT ON upload_sessions
WHEN EXISTS (SELECT 1 FROM repositories WHERE id = NEW.repository_id AND NOT write_enabled)
BEGIN
    SELECT RAISE(ABORT, 'berth lock: repository writeEnabled');
END;

CREATE TRIGGER repository_blobs_insert_lock BEFORE INSERT ON repository_blobs
WHEN EXISTS (SELECT 1 FROM repositories WHERE id = NEW.repository_id AND NOT write_enabled)
BEGIN
    SELECT RAISE(ABORT, 'berth lock: repository writeEnabled');
END;

CREATE TRIGGER manifests_insert_lock BEFORE INSERT ON manifests
WHEN EXISTS (SELECT 1 FROM repositories WHERE id = NEW.repository_id AND NOT write_enabled)
BEGIN
    SELECT RAISE(ABORT, 'berth lock: repository writeEnabled');
END;

-- In a delete cascading from its repository, the repository's row is already gone.
CREATE TRIGGER manifests_delete_lock BEFORE DELETE ON manifests
BEGIN
    SELECT RAISE(ABORT, 'berth lock: manifest deleteEnabled') WHERE NOT OLD.delete_enabled;
    SELECT RAISE(ABORT, 'berth lock: repository deleteEnabled')
    WHERE EXISTS (SELECT 1 FROM repositories WHERE id = OLD.repository_id AND NOT delete_enabled);
END;

CREATE TRIGGER tags_insert_lock BEFORE INSERT ON tags
WHEN EXISTS (SELECT 1 FROM repositories WHERE id = NEW.repository_id AND NOT write_enabled)
BEGIN
    SELECT RAISE(ABORT, 'berth lock: repository writeEnabled');
END;

-- Moving a tag writes to it and takes it from its manifest; pointing it at the digest it has changes
-- nothing.
CREATE TRIGGER tags_move_lock BEFORE UPDATE OF manifest_digest ON tags
WHEN NEW.manifest_digest <> OLD.manifest_digest
BEGIN
    SELECT RAISE(ABORT, 'berth lock: tag writeEnabled') WHERE NOT OLD.write_enabled;
    SELECT RAISE(ABORT, 'berth lock: manifest writeEnabled')
    WHERE EXISTS (SELECT 1 FROM manifests WHERE repository_id = OLD.repository_id
                  AND digest = OLD.manifest_digest AND NOT write_enabled);
    SELECT RAISE(ABORT, 'berth lock: repository writeEnabled')
    WHERE EXISTS (SELECT 1 FROM repositories WHERE id = OLD.repository_id AND NOT write_enabled);
END;

CREATE TRIGGER tags_delete_lock BEFORE DELETE ON tags
BEGIN
    SELECT RAISE(ABORT, 'berth lock: tag deleteEnabled') WHERE NOT OLD.delete_enabled;
    SELECT RAISE(ABORT, 'berth lock: manifest deleteEnabled')
    WHERE EXISTS (SELECT 1 FROM manifests WHERE repository_id = OLD.repository_id
                  AND digest = OLD.manifest_digest AND NOT delete_enabled);
    SELECT RAISE(ABORT, 'berth lock: repository deleteEnabled')
    WHERE EXISTS (SELECT 1 FROM repositories WHERE id = OLD.repository_id AND NOT delete_enabled);
END;
