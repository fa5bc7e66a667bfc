-- feedloom SQLite schema, version 4: the item's link in a column of its own, and one index that
-- holds what selecting items for an output and clustering them need (sort date, key, first
-- seen, link, cluster key), so publishing reads only the items it publishes, not every row
-- (`data` is kilobytes per item and `link` and `cluster` come after it in a row). It replaces
-- version 3's items_clusters, which held a subset of it.
ALTER TABLE items ADD COLUMN link TEXT;
UPDATE items SET link = json_extract(data, '$.link');
DROP INDEX items_clusters;
CREATE INDEX items_heads ON items (sort_date, source, id, first_seen, link, cluster);
-- Signatures move to a table of their own: in the items table they came after `data`, so
-- reading one meant reading every overflow page of the item. A trigger drops an item's
-- signature when the item changes or goes.
CREATE TABLE signatures (
    source    TEXT NOT NULL,
    id        TEXT NOT NULL,
    signature BLOB NOT NULL,
    PRIMARY KEY (source, id)
) STRICT, WITHOUT ROWID;
INSERT INTO signatures (source, id, signature)
    SELECT source, id, signature FROM items WHERE signature IS NOT NULL;
ALTER TABLE items DROP COLUMN signature;
CREATE TRIGGER items_changed AFTER UPDATE OF hash ON items WHEN NEW.hash IS NOT OLD.hash
BEGIN
    DELETE FROM signatures WHERE source = OLD.source AND id = OLD.id;
END;
CREATE TRIGGER items_deleted AFTER DELETE ON items
BEGIN
    DELETE FROM signatures WHERE source = OLD.source AND id = OLD.id;
END;
