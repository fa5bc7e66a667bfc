-- feedloom SQLite schema, version 2: near-duplicate clustering.
-- signature: the item's MinHash signature (src/cluster.rs, 128 little-endian u32), NULL until
-- computed and again whenever the item's content changes; cluster: the published id of the
-- story's cluster (its first member's id), given once and kept.
ALTER TABLE items ADD COLUMN signature BLOB;
ALTER TABLE items ADD COLUMN cluster TEXT;
