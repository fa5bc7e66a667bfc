-- feedloom PostgreSQL schema, version 5: what a source's last document leaves to reuse (its
-- items by the hash of their raw form, normalize::Reuse as JSON) has a table of its own, as in
-- SQLite (migrations/sqlite/0010_source_reuse.sql), written with the items it describes. The
-- copies in states are not moved: a state sheds its copy when it is next written, and that
-- source's next new document is normalised whole, once.
CREATE TABLE source_reuse (
    name  TEXT COLLATE "C" PRIMARY KEY,
    reuse TEXT NOT NULL
);
