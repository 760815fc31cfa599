-- A blob's parts are named, not only sized: on S3, Azure Blob and GCS a committed blob stays in its upload
-- chunks, whose names the row must keep. `parts` is `name:size,...` (NULL: object_key is one object).
-- Existing rows' parts were the objects <object_key>/<index:08>; they are rewritten with those names.
ALTER TABLE blobs RENAME COLUMN part_sizes TO parts;
UPDATE blobs SET parts = (
    WITH RECURSIVE split(i, rest, done) AS (
        SELECT 0, blobs.parts || ',', ''
        UNION ALL
        SELECT i + 1,
               substr(rest, instr(rest, ',') + 1),
               done || CASE WHEN i = 0 THEN '' ELSE ',' END
                    || printf('%08d', i) || ':' || substr(rest, 1, instr(rest, ',') - 1)
        FROM split WHERE rest <> ''
    )
    SELECT done FROM split WHERE rest = ''
) WHERE parts IS NOT NULL AND parts <> '';
