-- feedloom SQLite schema, version 5: cluster keys move out of the items table. SQLite rewrites a
-- whole row on any UPDATE, so giving an item its key rewrote its JSON too: a first run wrote
-- every item twice (with the WAL checkpoints that follow, an eighth of a cold refresh's CPU).
-- A key, once given, stays while its item is stored (an edited item keeps its cluster).
CREATE TABLE cluster_keys (
    source  TEXT NOT NULL,
    id      TEXT NOT NULL,
    cluster TEXT NOT NULL,
    PRIMARY KEY (source, id)
) STRICT, WITHOUT ROWID;
INSERT INTO cluster_keys (source, id, cluster)
    SELECT source, id, cluster FROM items WHERE cluster IS NOT NULL;
DROP INDEX items_heads;
ALTER TABLE items DROP COLUMN cluster;
CREATE INDEX items_heads ON items (sort_date, source, id, first_seen, link);
DROP TRIGGER items_deleted;
CREATE TRIGGER items_deleted AFTER DELETE ON items
BEGIN
    DELETE FROM signatures WHERE source = OLD.source AND id = OLD.id;
    DELETE FROM cluster_keys WHERE source = OLD.source AND id = OLD.id;
END;
