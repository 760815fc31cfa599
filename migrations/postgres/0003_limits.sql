-- Per-registry overrides of the SKU's concurrency limits; NULL means the SKU default from the config.
ALTER TABLE registries ADD COLUMN pull_limit BIGINT;
ALTER TABLE registries ADD COLUMN push_limit BIGINT;
