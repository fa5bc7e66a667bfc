-- feedloom PostgreSQL schema, version 2: near-duplicate clustering, as SQLite's version 2.
-- signature: the item's MinHash signature (src/cluster.rs), NULL until computed and again
-- whenever the item's content changes; cluster: the published id of the story's cluster (its
-- first member's id), given once and kept.
ALTER TABLE items ADD COLUMN signature BYTEA;
ALTER TABLE items ADD COLUMN cluster TEXT COLLATE "C";
