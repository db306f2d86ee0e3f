-- Models that generate candidates, and the job queue that runs generation.

CREATE TABLE models (
    id           uuid PRIMARY KEY,
    name         text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    -- A GGUF file or a Hugging Face directory on the workers' disk.
    path         text NOT NULL,
    format       text NOT NULL CHECK (format IN ('gguf', 'hf')),
    notes        text NOT NULL DEFAULT '',
    -- The model a fine-tuned checkpoint was trained from.
    parent_id    uuid REFERENCES models (id) ON DELETE SET NULL,
    created_by   uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- A job is the queue entry; for generation its prompts are claimed in batches from
-- job_prompts, so several workers share one job and a crash loses at most a batch.
CREATE TABLE jobs (
    id            uuid PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('generate')),
    campaign_id   uuid REFERENCES campaigns (id) ON DELETE CASCADE,
    payload       jsonb NOT NULL,
    status        text NOT NULL DEFAULT 'queued'
                  CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    total         integer NOT NULL DEFAULT 0,
    done          integer NOT NULL DEFAULT 0,
    failed        integer NOT NULL DEFAULT 0,
    tokens        bigint NOT NULL DEFAULT 0,
    -- Engine time spent on the tokens above, for tokens/s.
    generate_ms   double precision NOT NULL DEFAULT 0,
    error         text,
    created_by    uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);
CREATE INDEX jobs_open ON jobs (created_at) WHERE status IN ('queued', 'running');
CREATE INDEX jobs_campaign ON jobs (campaign_id, created_at);

CREATE TABLE job_prompts (
    job_id        uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    prompt_id     uuid NOT NULL REFERENCES prompts (id) ON DELETE CASCADE,
    status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'leased', 'done', 'dead')),
    attempts      integer NOT NULL DEFAULT 0,
    -- Not claimable before this (retry backoff), and a lease ends here unless heartbeated.
    available_at  timestamptz NOT NULL DEFAULT now(),
    lease_expires_at timestamptz,
    worker        text,
    error         text,
    PRIMARY KEY (job_id, prompt_id)
);
CREATE INDEX job_prompts_claimable ON job_prompts (job_id, available_at) WHERE status IN ('pending', 'leased');

-- The generation settings last used for a campaign (the default of its next job).
ALTER TABLE campaigns ADD COLUMN generation jsonb;
