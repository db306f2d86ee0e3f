-- A model trained by a worker keeps its checkpoint in the shared storage too: `stored_at`
-- is its key prefix there, so a worker on another host fetches the files when the
-- registered path is not on its disk.
ALTER TABLE models ADD COLUMN stored_at TEXT;
