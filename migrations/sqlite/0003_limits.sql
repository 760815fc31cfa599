-- Per-registry overrides of the SKU's concurrency limits; NULL means the SKU default from the config.
ALTER TABLE registries ADD COLUMN pull_limit INTEGER;
ALTER TABLE registries ADD COLUMN push_limit INTEGER;
