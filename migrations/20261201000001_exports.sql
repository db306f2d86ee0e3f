-- Preference dataset exports: the request, its progress, and the files it wrote.

CREATE TABLE exports (
    id           uuid PRIMARY KEY,
    created_by   uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- The domain ExportSpec: campaigns, format, file type, filters.
    spec         jsonb NOT NULL,
    -- The folder on the server's disk that holds the files.
    dir          text NOT NULL,
    status       text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
    done         bigint NOT NULL DEFAULT 0,
    total        bigint,
    rows_written bigint,
    -- [{"name", "rows", "bytes", "sha256"}], the dataset card included.
    files        jsonb NOT NULL DEFAULT '[]',
    counts       jsonb,
    error        text,
    -- Bumped with each progress report; a running export with an old heartbeat has died.
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE INDEX exports_creator ON exports (created_by, created_at);

-- Installation secrets, made once here so they never have a default. The pseudonym key turns
-- labeler ids into stable pseudonyms in raw exports without revealing who they are.
CREATE TABLE installation_secrets (
    name  text PRIMARY KEY,
    value bytea NOT NULL
);
INSERT INTO installation_secrets (name, value)
VALUES ('labeler_pseudonym_key', uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()));

