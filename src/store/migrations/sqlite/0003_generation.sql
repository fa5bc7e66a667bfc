-- feedloom SQLite schema, version 3: a counter of changes to what could be published (items
-- added, changed or deleted), so publishing can tell that nothing changed since it last ran;
-- an index of unlisted items, so pruning does not read the whole table on every run; and one that
-- holds every item's cluster key, so clustering reads keys without reading items (the `cluster`
-- column comes after `data` in a row).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT;
INSERT INTO meta (key, value) VALUES ('generation', 0);
CREATE INDEX items_unlisted ON items (last_seen) WHERE listed = 0;
CREATE INDEX items_clusters ON items (sort_date, source, id, cluster);
