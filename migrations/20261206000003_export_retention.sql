-- Finished exports whose files were removed after the retention period
-- (PAIRWISE_EXPORT_RETENTION_DAYS) stay listed as 'expired', with their card's figures.
ALTER TABLE exports DROP CONSTRAINT exports_status_check;
ALTER TABLE exports ADD CONSTRAINT exports_status_check
    CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled', 'expired'));
