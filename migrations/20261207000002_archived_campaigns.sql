-- A closed campaign can be archived: the lists show it apart; its data stays.
ALTER TABLE campaigns ADD COLUMN archived_at timestamptz;

-- The item browser pages a campaign's items in creation order.
DROP INDEX items_campaign;
CREATE INDEX items_campaign_seq ON items (campaign_id, seq);
