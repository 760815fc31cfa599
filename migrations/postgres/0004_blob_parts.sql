-- A blob's parts are named, not only sized: on S3, Azure Blob and GCS a committed blob stays in its upload
-- chunks, whose names the row must keep. `parts` is `name:size,...` (NULL: object_key is one object).
-- Existing rows' parts were the objects <object_key>/<index:08>; they are rewritten with those names.
ALTER TABLE blobs RENAME COLUMN part_sizes TO parts;
UPDATE blobs SET parts = (
    SELECT string_agg(lpad((n - 1)::text, 8, '0') || ':' || size, ',' ORDER BY n)
    FROM unnest(string_to_array(blobs.parts, ',')) WITH ORDINALITY AS t(size, n)
) WHERE parts IS NOT NULL AND parts <> '';
