-- Labelers may change their last answer for a while after giving it (`undo_seconds`, 0: never).
-- A changed judgment keeps what it replaced in judgment_revisions, so nothing is lost; the
-- judgment keeps its own client_request_id (a retried submit is still recognised) and its
-- time on task (the first decision's).
ALTER TABLE campaigns ADD COLUMN undo_seconds integer NOT NULL DEFAULT 300
    CHECK (undo_seconds BETWEEN 0 AND 86400);

ALTER TABLE judgments ADD COLUMN revised_at timestamptz;

CREATE TABLE judgment_revisions (
    id                  uuid PRIMARY KEY,
    judgment_id         uuid NOT NULL REFERENCES judgments (id) ON DELETE CASCADE,
    -- The answer as it was before this change.
    choice              text NOT NULL,
    winner_candidate_id uuid,
    strength            integer,
    rationale           text,
    answered_at         timestamptz NOT NULL,
    -- The change: when, and the request that made it (a repeat of it changes nothing).
    replaced_at         timestamptz NOT NULL DEFAULT now(),
    request_id          text NOT NULL CHECK (length(request_id) BETWEEN 1 AND 200),
    UNIQUE (judgment_id, request_id)
);
CREATE INDEX judgment_revisions_judgment ON judgment_revisions (judgment_id, replaced_at);
