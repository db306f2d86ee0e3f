-- Imports skip lines whose `id` a campaign already holds: that lookup, per campaign.
CREATE INDEX prompts_line_id ON prompts (campaign_id, (metadata->'id')) WHERE metadata ? 'id';

-- Generated pairs whose two candidates read the same are not made into items; each job
-- counts them, so the generation page can say so.
ALTER TABLE jobs ADD COLUMN identical_pairs integer NOT NULL DEFAULT 0;
