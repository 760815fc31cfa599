-- A registry's retention policy, as JSON (see ops::retention): untagged manifests older than some days,
-- and keep rules for tags, applied on the collector's schedule.
ALTER TABLE registries ADD COLUMN retention_policy TEXT NOT NULL DEFAULT '{}';
