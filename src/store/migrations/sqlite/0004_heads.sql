-- feedloom SQLite schema, version 4: the item's link in a column of its own, and one index that
-- holds what selecting items for an output and clustering them need (sort date, key, first
-- seen, link, cluster key), so publishing reads only the items it publishes, not every row
-- (`data` is kilobytes per item and `link` and `cluster` come after it in a row). It replaces
-- version 3's items_clusters, which held a subset of it.
ALTER TABLE items ADD COLUMN link TEXT;
UPDATE items SET link = json_extract(data, '$.link');
DROP INDEX items_clusters;
CREATE INDEX items_heads ON items (sort_date, source, id, first_seen, link, cluster);
