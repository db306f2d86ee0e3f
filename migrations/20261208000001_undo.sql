-- Labelers may change their last answer for a while after giving it (`undo_seconds`, 0: never).
-- A changed judgment keeps what it replaced in judgment_revisions, so nothing is lost.
ALTER TABLE campaigns ADD COLUMN undo_seconds integer NOT NULL DEFAULT 300
    CHECK (undo_seconds BETWEEN 0 AND 86400);

ALTER TABLE judgments ADD COLUMN revised_at timestamptz;

CREATE TABLE judgment_revisions (
    id                  uuid PRIMARY KEY,
    judgment_id         uuid NOT NULL REFERENCES judgments (id) ON DELETE CASCADE,
    choice              text NOT NULL,
    winner_candidate_id uuid,
    strength            integer,
    rationale           text,
    time_on_task_ms     integer,
    client_request_id   text NOT NULL,
    -- When the replaced answer was given, and when it was replaced.
    answered_at         timestamptz NOT NULL,
    replaced_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX judgment_revisions_judgment ON judgment_revisions (judgment_id, replaced_at);
