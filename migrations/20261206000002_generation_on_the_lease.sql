-- Generation prompts are claimed through the same lease as training runs and exports
-- (store/src/lease.rs): the same status names, a finished time, and the number of attempts
-- each allows (the job's `max_attempts`), so that a prompt whose worker keeps dying is
-- failed after its last attempt instead of being taken over for ever.
ALTER TABLE job_prompts DROP CONSTRAINT job_prompts_status_check;
UPDATE job_prompts SET status = CASE status
    WHEN 'pending' THEN 'queued' WHEN 'leased' THEN 'running' WHEN 'dead' THEN 'failed'
    ELSE status END;
ALTER TABLE job_prompts ALTER COLUMN status SET DEFAULT 'queued';
ALTER TABLE job_prompts ADD CONSTRAINT job_prompts_status_check
    CHECK (status IN ('queued', 'running', 'done', 'failed'));
ALTER TABLE job_prompts
    ADD COLUMN max_attempts integer NOT NULL DEFAULT 3,
    ADD COLUMN finished_at timestamptz;
UPDATE job_prompts jp SET max_attempts = coalesce((j.payload->'spec'->>'max_attempts')::int, 3)
FROM jobs j WHERE j.id = jp.job_id;
DROP INDEX job_prompts_claimable;
CREATE INDEX job_prompts_claimable ON job_prompts (job_id, available_at)
    WHERE status IN ('queued', 'running');
