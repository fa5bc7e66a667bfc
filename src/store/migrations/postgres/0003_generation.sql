-- feedloom PostgreSQL schema, version 3: as SQLite's version 3, a counter of changes to what
-- could be published (items added, changed or deleted), shared by all instances; and an index
-- of unlisted items, so pruning does not read the whole table on every run.
CREATE TABLE meta (
    key   TEXT COLLATE "C" PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO meta (key, value) VALUES ('generation', 0);
CREATE INDEX items_unlisted ON items (last_seen) WHERE NOT listed;
