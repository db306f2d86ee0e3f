-- A closed campaign can be archived: the lists show it apart; its data stays.
ALTER TABLE campaigns ADD COLUMN archived_at timestamptz;
