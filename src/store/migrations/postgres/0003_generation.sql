-- feedloom PostgreSQL schema, version 3: as SQLite's version 3, a counter of changes to what
-- could be published (items added, changed or deleted), shared by all instances.
CREATE TABLE meta (
    key   TEXT COLLATE "C" PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO meta (key, value) VALUES ('generation', 0);
