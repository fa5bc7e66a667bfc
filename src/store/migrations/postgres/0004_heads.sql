-- feedloom PostgreSQL schema, version 4: as SQLite's version 4, the item's link in a column of
-- its own and an index holding what selecting and clustering items need, so publishing reads
-- only the items it publishes (index-only where the visibility map allows).
ALTER TABLE items ADD COLUMN link TEXT;
UPDATE items SET link = data::jsonb ->> 'link';
CREATE INDEX items_heads ON items (sort_date, source, id) INCLUDE (first_seen, link, cluster);
