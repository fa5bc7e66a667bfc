-- feedloom PostgreSQL schema, version 1: the SQLite schema (migrations/sqlite/0001_init.sql),
-- plus what several instances share: leases on sources, per-host counts, Retry-After.
-- Times of items are unix seconds as in SQLite; lease and fetch bookkeeping is in unix
-- milliseconds. Text keys sort by bytes (COLLATE "C"), as SQLite's BINARY does, so both
-- backends list tied items in the same order and publish the same bytes.
CREATE TABLE sources (
    name             TEXT COLLATE "C" PRIMARY KEY,
    state            TEXT,   -- SourceState as JSON; NULL until a fetch is recorded
    url              TEXT,   -- state.url: the location a Retry-After belongs to
    retry_not_before BIGINT, -- state.retry_not_before (ms): no claim before it
    fetched_at       BIGINT, -- when the last fetch was recorded (ms, recording instance's clock)
    host             TEXT,   -- the host the last claim fetches from (NULL: a local file)
    lease_owner      TEXT,   -- the run holding the source, until lease_until (ms)
    lease_until      BIGINT
);

CREATE INDEX sources_leased ON sources (lease_until, host) WHERE lease_until IS NOT NULL;

CREATE TABLE items (
    source     TEXT COLLATE "C" NOT NULL,
    id         TEXT COLLATE "C" NOT NULL,
    hash       BIGINT  NOT NULL,
    first_seen BIGINT  NOT NULL, -- unix seconds
    last_seen  BIGINT  NOT NULL,
    sort_date  BIGINT  NOT NULL,
    listed     BOOLEAN NOT NULL DEFAULT TRUE, -- while the source's latest document lists it
    data       TEXT    NOT NULL,
    PRIMARY KEY (source, id)
);

CREATE INDEX items_by_date ON items (sort_date DESC, source, id);
CREATE INDEX items_by_source_date ON items (source, sort_date DESC);
