-- When each tag and manifest was last pulled (unix seconds, NULL: never) and how many times: what keep
-- rules read. Counted in memory and added here in batches (ops::pulls).
ALTER TABLE manifests ADD COLUMN last_pulled_at BIGINT;
ALTER TABLE manifests ADD COLUMN pull_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tags ADD COLUMN last_pulled_at BIGINT;
ALTER TABLE tags ADD COLUMN pull_count BIGINT NOT NULL DEFAULT 0;
