-- feedloom SQLite schema, version 6: items_by_date (sort_date DESC, source, id) goes. items_heads
-- (sort_date, source, id, first_seen, link) begins with the same columns and serves every query
-- that read it (SQLite walks an index either way; ties of a date, rare, are put in order on the
-- fly). Each stored item cost an entry in both (a cold run at 1,000 sources: 0.35 s less system
-- CPU without it).
DROP INDEX IF EXISTS items_by_date;
