-- Pairwise schema: accounts, campaigns, imported data, the assignment queue and judgments.
-- Enumerations are text with CHECK constraints so new values need no type migration.

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    email         text NOT NULL UNIQUE CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 320),
    role          text NOT NULL CHECK (role IN ('admin', 'researcher', 'labeler')),
    -- NULL until an invited user sets a password.
    password_hash text,
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sessions (
    token_hash bytea PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE api_tokens (
    id           uuid PRIMARY KEY,
    token_hash   bytea NOT NULL UNIQUE,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);

CREATE TABLE invites (
    token_hash bytea PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);

CREATE TABLE login_attempts (
    id        bigserial PRIMARY KEY,
    email     text NOT NULL,
    ip        text NOT NULL,
    succeeded boolean NOT NULL,
    at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_attempts_email ON login_attempts (email, at);
CREATE INDEX login_attempts_ip ON login_attempts (ip, at);

CREATE TABLE campaigns (
    id             uuid PRIMARY KEY,
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    guidelines     text NOT NULL DEFAULT '',
    mode           text NOT NULL DEFAULT 'pairwise' CHECK (mode IN ('pairwise')),
    overlap        integer NOT NULL CHECK (overlap BETWEEN 1 AND 100),
    allow_tie      boolean NOT NULL DEFAULT true,
    allow_both_bad boolean NOT NULL DEFAULT true,
    -- 0: no strength asked; otherwise strength is 1..=strength_scale.
    strength_scale integer NOT NULL DEFAULT 0 CHECK (strength_scale BETWEEN 0 AND 10),
    rationale      text NOT NULL DEFAULT 'optional' CHECK (rationale IN ('off', 'optional', 'required')),
    lease_seconds  integer NOT NULL DEFAULT 900 CHECK (lease_seconds BETWEEN 10 AND 86400),
    status         text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'active', 'paused', 'closed')),
    created_by     uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE campaign_members (
    campaign_id uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        text NOT NULL CHECK (role IN ('labeler', 'researcher')),
    added_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, user_id)
);
CREATE INDEX campaign_members_user ON campaign_members (user_id);

CREATE TABLE prompts (
    id          uuid PRIMARY KEY,
    campaign_id uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    -- The whole conversation: [{"role": ..., "content": ...}, ...]
    messages    jsonb NOT NULL,
    metadata    jsonb NOT NULL DEFAULT '{}',
    -- Gold answer: index of the better response in import order, or "tie"; NULL when not gold.
    gold        jsonb,
    source_line integer,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX prompts_campaign ON prompts (campaign_id);

CREATE TABLE candidates (
    id         uuid PRIMARY KEY,
    prompt_id  uuid NOT NULL REFERENCES prompts (id) ON DELETE CASCADE,
    position   integer NOT NULL,
    text       text NOT NULL,
    metadata   jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (prompt_id, position)
);

CREATE TABLE items (
    id              uuid PRIMARY KEY,
    campaign_id     uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    prompt_id       uuid NOT NULL REFERENCES prompts (id) ON DELETE CASCADE,
    candidate_ids   uuid[] NOT NULL CHECK (cardinality(candidate_ids) >= 2),
    is_gold         boolean NOT NULL DEFAULT false,
    -- Labeler slots still open: overlap minus live leases and done judgments. The claim query
    -- locks the item row and decrements this, so concurrent claims can never exceed overlap.
    remaining       integer NOT NULL CHECK (remaining >= 0),
    judgment_count  integer NOT NULL DEFAULT 0,
    seq             bigserial NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX items_open ON items (campaign_id, seq) WHERE remaining > 0;
CREATE INDEX items_campaign ON items (campaign_id);

CREATE TABLE assignments (
    id           uuid PRIMARY KEY,
    item_id      uuid NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    campaign_id  uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Candidate ids left to right as this labeler sees them.
    shown_order  uuid[] NOT NULL,
    status       text NOT NULL CHECK (status IN ('leased', 'done', 'skipped', 'expired')),
    leased_at    timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    completed_at timestamptz,
    UNIQUE (item_id, user_id)
);
CREATE INDEX assignments_live ON assignments (campaign_id, expires_at) WHERE status = 'leased';
CREATE INDEX assignments_user ON assignments (user_id, campaign_id, status);

CREATE TABLE judgments (
    id                  uuid PRIMARY KEY,
    assignment_id       uuid NOT NULL UNIQUE REFERENCES assignments (id) ON DELETE CASCADE,
    item_id             uuid NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    campaign_id         uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    user_id             uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    choice              text NOT NULL CHECK (choice IN ('a', 'b', 'tie', 'both_bad', 'skip')),
    -- The winning candidate for a/b, resolved from the shown order at submit time.
    winner_candidate_id uuid,
    shown_order         uuid[] NOT NULL,
    strength            integer,
    rationale           text,
    time_on_task_ms     integer,
    client_request_id   text NOT NULL CHECK (length(client_request_id) BETWEEN 1 AND 200),
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, client_request_id)
);
CREATE INDEX judgments_campaign ON judgments (campaign_id, created_at);
CREATE INDEX judgments_item ON judgments (item_id);

CREATE TABLE audit_log (
    id         bigserial PRIMARY KEY,
    actor_id   uuid REFERENCES users (id) ON DELETE SET NULL,
    action     text NOT NULL,
    subject    text NOT NULL,
    detail     jsonb NOT NULL DEFAULT '{}',
    at         timestamptz NOT NULL DEFAULT now()
);
