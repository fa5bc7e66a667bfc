-- feedloom SQLite schema, version 7: the heads index leads with the source. Items are written one
-- source per transaction, and a source's items span every date: keyed by date first, each
-- transaction dirtied index pages all over, and WAL writes (and checkpoints copy) every dirtied
-- page whole, so a first run wrote the index out again for about every source (a cold run of
-- 1,000 sources spent half its SQLite time on it). Keyed by source, a source's entries are
-- neighbours. The store puts heads in date order itself. items_by_source_date (source,
-- sort_date DESC) is this index's prefix, so it goes.
DROP INDEX items_heads;
DROP INDEX items_by_source_date;
CREATE INDEX items_heads ON items (source, sort_date DESC, id, first_seen, link);
