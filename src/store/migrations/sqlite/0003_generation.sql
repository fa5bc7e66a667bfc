-- feedloom SQLite schema, version 3: a counter of changes to what could be published (items
-- added, changed or deleted), so publishing can tell that nothing changed since it last ran.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT;
INSERT INTO meta (key, value) VALUES ('generation', 0);
