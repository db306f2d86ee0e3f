-- Servers keep callers and their campaign rights in memory for the labeling hot path; every
-- change that could alter who someone is or what they may do announces itself on the channel
-- `pairwise_access` (delivered at commit), and each server drops its copies when it hears it.
-- Inserts of sessions, tokens and users need no message: only rows found are kept.
CREATE FUNCTION pairwise_notify_access() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pairwise_access', TG_TABLE_NAME);
    RETURN NULL;
END
$$;

CREATE TRIGGER users_access AFTER UPDATE OR DELETE OR TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION pairwise_notify_access();
CREATE TRIGGER sessions_access AFTER UPDATE OR DELETE OR TRUNCATE ON sessions
    FOR EACH STATEMENT EXECUTE FUNCTION pairwise_notify_access();
CREATE TRIGGER api_tokens_access AFTER UPDATE OR DELETE OR TRUNCATE ON api_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION pairwise_notify_access();
CREATE TRIGGER campaigns_access AFTER UPDATE OR DELETE OR TRUNCATE ON campaigns
    FOR EACH STATEMENT EXECUTE FUNCTION pairwise_notify_access();
CREATE TRIGGER campaign_members_access AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON campaign_members
    FOR EACH STATEMENT EXECUTE FUNCTION pairwise_notify_access();
