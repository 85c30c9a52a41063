-- Schema v2: structured metadata on a dispatch, like runs.metadata (a JSON object or NULL).
-- The orchestrator keeps there where an attempt stands in its loop (phase, cycle, attempt) and what
-- the attempt concluded (the review verdict, problems, discarded changes), so a rerun reads them back
-- instead of parsing dispatch names or log files.
ALTER TABLE dispatches ADD COLUMN metadata TEXT;
