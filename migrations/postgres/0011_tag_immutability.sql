-- A registry's tag immutability rules, as JSON: which tags of which repositories are write-once (see
-- ops::immutability). Kept on the registry's row, which every push reads already.
ALTER TABLE registries ADD COLUMN immutability_rules TEXT NOT NULL DEFAULT '[]';
