-- feedloom SQLite schema, version 8: what every fetch changes is kept apart from the rest of a
-- source's state. The state (1-2 KB of JSON: validators, feed facts, the last document's item
-- hashes) is rewritten only when it changes; a fetch answered 304 changes only when it was
-- fetched, and rewriting the whole state for that dirtied the whole sources table in a run
-- (about 400 pages at 1,000 sources, written to the WAL once per group commit and copied back
-- at the checkpoint). Times are Unix nanoseconds; NULL where the state's JSON holds the value
-- (a time out of that range) or there is none. Rows written before this version have none here
-- and their times in the JSON, which is read as it is.
CREATE TABLE source_fetches (
    name         TEXT PRIMARY KEY,
    fetched_at   INTEGER,
    succeeded_at INTEGER,
    status       INTEGER
) STRICT, WITHOUT ROWID;
