-- Exports run on workers like training runs: a worker claims one with a lease that it renews
-- while it writes; when the lease runs out (the worker died) another worker takes it over, up
-- to a few attempts. The lease replaces the heartbeat that in-process exports reported.
ALTER TABLE exports
    ADD COLUMN attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN worker text,
    ADD COLUMN lease_expires_at timestamptz;
-- Exports that were running in a server before this version are claimable at once.
UPDATE exports SET lease_expires_at = now() WHERE status = 'running';
ALTER TABLE exports DROP COLUMN heartbeat_at;
CREATE INDEX exports_claimable ON exports (created_at) WHERE status IN ('queued', 'running');

-- Where an export's files are: `dir` is their key prefix in the storage (`exports/<id>`), or,
-- for `pairwise export`, which writes into a folder of the caller's choice, that folder.
-- Exports written before this version under the data folder are where the storage (by default
-- that folder) finds them.
ALTER TABLE exports ADD COLUMN in_storage boolean NOT NULL DEFAULT true;
UPDATE exports SET in_storage = dir LIKE '%exports/' || id::text;
UPDATE exports SET dir = 'exports/' || id::text WHERE in_storage;

-- Exports can be cancelled like generation jobs and training runs.
ALTER TABLE exports DROP CONSTRAINT exports_status_check;
ALTER TABLE exports ADD CONSTRAINT exports_status_check
    CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled'));
