-- Training runs: a reward model or a DPO fine-tune trained on an export's files, picked up by
-- a worker (`pairwise serve` or `pairwise worker`), with its figures for the live chart.

CREATE TABLE training_runs (
    id            uuid PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('reward', 'dpo')),
    export_id     uuid NOT NULL REFERENCES exports (id) ON DELETE CASCADE,
    base_model_id uuid NOT NULL REFERENCES models (id),
    -- The domain TrainSettings as asked for.
    settings      jsonb NOT NULL,
    status        text NOT NULL DEFAULT 'queued'
                  CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    phase         text NOT NULL DEFAULT 'queued',
    step          integer NOT NULL DEFAULT 0,
    total_steps   integer,
    train_pairs   integer,
    eval_pairs    integer,
    -- Per-step and per-evaluation figures: [{"step", "epoch", "loss", ...}].
    points        jsonb NOT NULL DEFAULT '[]',
    eval          jsonb NOT NULL DEFAULT '[]',
    summary       jsonb,
    output_dir    text,
    model_id      uuid REFERENCES models (id) ON DELETE SET NULL,
    error         text,
    attempts      integer NOT NULL DEFAULT 0,
    worker        text,
    -- A running run whose lease ran out lost its worker and is claimable again.
    lease_expires_at timestamptz,
    created_by    uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);
CREATE INDEX training_runs_open ON training_runs (created_at) WHERE status IN ('queued', 'running');
CREATE INDEX training_runs_export ON training_runs (export_id, created_at);
