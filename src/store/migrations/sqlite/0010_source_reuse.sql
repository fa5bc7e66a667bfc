-- feedloom SQLite schema, version 10: what a source's last document leaves to reuse (its items
-- by the hash of their raw form, normalize::Reuse as JSON) moves out of the state into a table
-- of its own. It was over half of the state's bytes, and every run reads, parses and writes
-- every state, while only a source that answers with a new document needs it. It is written
-- with the items it describes, in their transaction.
CREATE TABLE source_reuse (
    name  TEXT PRIMARY KEY,
    reuse TEXT NOT NULL
) STRICT;

-- A state that is not JSON is left as it is (reading it tells which source is damaged); CASE,
-- as AND does not promise to test json_valid first.
INSERT INTO source_reuse (name, reuse)
    SELECT name, json_extract(state, '$.normalized') FROM sources
    WHERE CASE WHEN json_valid(state) THEN json_type(state, '$.normalized') END = 'object';
UPDATE sources SET state = json_remove(state, '$.normalized')
    WHERE CASE WHEN json_valid(state) THEN json_type(state, '$.normalized') END IS NOT NULL;
