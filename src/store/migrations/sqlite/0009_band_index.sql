-- feedloom SQLite schema, version 9: what keeps the band index (src/cluster/bands.rs, a file
-- beside the database) complete. An update looks new items' band values up in it instead of
-- reading every old signature in the window; the file must name every item with a cluster key
-- that holds a value, so whatever changes such an item's signature or date after the file was
-- written is logged here, and the next clustering run reads those items' signatures itself.
--
-- band_log: items with a cluster key that changed (their hash or sort date), whose signature was
-- replaced by other bytes, or whose signature was dropped while they stay. AUTOINCREMENT: a sequence number is never given twice, even once the log
-- has been emptied (the state's `covered` names the last one read).
CREATE TABLE band_log (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    id     TEXT NOT NULL
) STRICT;
-- band_state: the index file the database vouches for (its token), the oldest sort date it
-- covers (unix seconds), and the last log entry it accounts for. Written in the transaction that
-- saves the cluster keys of the run that brought the index up to date; dropped when keys are
-- saved without doing so.
CREATE TABLE band_state (
    one     INTEGER PRIMARY KEY CHECK (one = 1),
    token   INTEGER NOT NULL,
    since   INTEGER NOT NULL,
    covered INTEGER NOT NULL
) STRICT;
-- band_delta: entries added since the file was written, a sorted run of one band each (the
-- file's entry format); dropped when a new file is written.
CREATE TABLE band_delta (
    seq     INTEGER PRIMARY KEY,
    band    INTEGER NOT NULL,
    entries BLOB    NOT NULL
) STRICT;
CREATE INDEX band_delta_by_band ON band_delta (band);
-- An item's signature is written anew only after it was dropped, and that happens when the item
-- changes (items_changed): the change is logged, and clustering reads the item itself, so writing
-- a signature needs no trigger (one on every insert cost about 5 us a row at ingest).
CREATE TRIGGER band_log_changed AFTER UPDATE OF hash, sort_date ON items
WHEN (NEW.hash IS NOT OLD.hash OR NEW.sort_date IS NOT OLD.sort_date)
    AND EXISTS (SELECT 1 FROM cluster_keys WHERE source = NEW.source AND id = NEW.id)
BEGIN
    INSERT INTO band_log (source, id) VALUES (NEW.source, NEW.id);
END;
-- A signature replaced by other bytes without the item changing (signed by another formula).
CREATE TRIGGER band_log_resigned AFTER UPDATE ON signatures
WHEN NEW.signature IS NOT OLD.signature
    AND EXISTS (SELECT 1 FROM cluster_keys WHERE source = NEW.source AND id = NEW.id)
BEGIN
    INSERT INTO band_log (source, id) VALUES (NEW.source, NEW.id);
END;
-- A signature dropped while its item stays (an item deleted takes its entries' meaning with it).
CREATE TRIGGER band_log_unsigned AFTER DELETE ON signatures
WHEN EXISTS (SELECT 1 FROM cluster_keys WHERE source = OLD.source AND id = OLD.id)
    AND EXISTS (SELECT 1 FROM items WHERE source = OLD.source AND id = OLD.id)
BEGIN
    INSERT INTO band_log (source, id) VALUES (OLD.source, OLD.id);
END;
