-- feedloom SQLite schema, version 1.
-- items: one row per (source, id); `data` is the normalised Item as JSON, `hash` its xxh3 so
-- an unchanged item costs one indexed read; `sort_date` = published, else updated, else the
-- time it was first seen (so an undated item keeps one stable date).
CREATE TABLE sources (
    name  TEXT PRIMARY KEY,
    state TEXT NOT NULL          -- SourceState as JSON
) STRICT;

CREATE TABLE items (
    source     TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    hash       INTEGER NOT NULL,
    first_seen INTEGER NOT NULL, -- unix seconds
    last_seen  INTEGER NOT NULL,
    sort_date  INTEGER NOT NULL,
    listed     INTEGER NOT NULL DEFAULT 1, -- 1 while the source's latest document lists it
    data       TEXT    NOT NULL,
    PRIMARY KEY (source, id)
) STRICT;

CREATE INDEX items_by_date ON items (sort_date DESC, source, id);
CREATE INDEX items_by_source_date ON items (source, sort_date DESC);
