-- A registry's own storage quota in bytes, set by the operator; NULL means its SKU's quota from the config.
ALTER TABLE registries ADD COLUMN storage_quota_bytes INTEGER;
