-- A judgment no longer rewrites its item's row: the kept `judgment_count` was the only reason
-- (a new item row version and three index entries per judgment, ~10% of the labeling loop's
-- PostgreSQL time); the statistics and the export estimate count judgments instead.

CREATE OR REPLACE FUNCTION pairwise_submit(
    p_assignment uuid, p_user uuid, p_judgment uuid, p_choice text, p_winner uuid,
    p_strength integer, p_rationale text, p_time_on_task_ms integer, p_request text,
    p_accepting text[]
) RETURNS TABLE (
    outcome text, judgment_id uuid, choice text, winner_candidate_id uuid,
    done bigint, skipped bigint, campaign_status text
)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    lease record;
    prior record;
    skip boolean := p_choice = 'skip';
    now_done bigint;
    now_skipped bigint;
BEGIN
    SELECT a.item_id, a.campaign_id, a.shown_order, a.status, c.status AS campaign_status
    INTO lease
    FROM assignments a JOIN campaigns c ON c.id = a.campaign_id
    WHERE a.id = p_assignment AND a.user_id = p_user
    FOR UPDATE OF a;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found', NULL::uuid, NULL::text, NULL::uuid, 0::bigint, 0::bigint,
                            NULL::text;
        RETURN;
    END IF;
    SELECT j.id, j.assignment_id, j.choice, j.winner_candidate_id INTO prior
    FROM judgments j
    WHERE j.user_id = p_user AND j.client_request_id = p_request;
    IF FOUND THEN
        RETURN QUERY
        SELECT CASE WHEN prior.assignment_id = p_assignment THEN 'repeated' ELSE 'request_reused' END,
               prior.id, prior.choice, prior.winner_candidate_id,
               coalesce(lp.done, 0), coalesce(lp.skipped, 0), lease.campaign_status
        FROM (SELECT 1) one
        LEFT JOIN labeler_progress lp
               ON lp.campaign_id = lease.campaign_id AND lp.user_id = p_user;
        RETURN;
    END IF;
    IF lease.status IN ('done', 'skipped') THEN
        RETURN QUERY SELECT 'judged', NULL::uuid, NULL::text, NULL::uuid, 0::bigint, 0::bigint,
                            lease.campaign_status;
        RETURN;
    END IF;
    IF NOT lease.campaign_status = ANY (p_accepting) THEN
        RETURN QUERY SELECT 'not_accepting', NULL::uuid, NULL::text, NULL::uuid, 0::bigint,
                            0::bigint, lease.campaign_status;
        RETURN;
    END IF;
    IF lease.status = 'expired' THEN
        UPDATE items SET remaining = remaining - 1 WHERE id = lease.item_id AND remaining > 0;
        IF NOT FOUND THEN
            RETURN QUERY SELECT 'taken', NULL::uuid, NULL::text, NULL::uuid, 0::bigint, 0::bigint,
                            lease.campaign_status;
            RETURN;
        END IF;
    END IF;
    INSERT INTO judgments (id, assignment_id, item_id, campaign_id, user_id, choice,
                           winner_candidate_id, shown_order, strength, rationale,
                           time_on_task_ms, client_request_id)
    VALUES (p_judgment, p_assignment, lease.item_id, lease.campaign_id, p_user, p_choice,
            p_winner, lease.shown_order, p_strength, p_rationale, p_time_on_task_ms, p_request);
    UPDATE assignments SET status = CASE WHEN skip THEN 'skipped' ELSE 'done' END,
                           completed_at = now()
    WHERE id = p_assignment;
    -- A skip hands the slot back to the queue; a judgment keeps the slot its lease took, so it
    -- leaves the item row alone.
    IF skip THEN
        UPDATE items SET remaining = remaining + 1 WHERE id = lease.item_id;
    END IF;
    INSERT INTO labeler_progress AS lp (campaign_id, user_id, done, skipped)
    VALUES (lease.campaign_id, p_user, CASE WHEN skip THEN 0 ELSE 1 END,
            CASE WHEN skip THEN 1 ELSE 0 END)
    ON CONFLICT (campaign_id, user_id) DO UPDATE
        SET done = lp.done + excluded.done, skipped = lp.skipped + excluded.skipped
    RETURNING lp.done, lp.skipped INTO now_done, now_skipped;
    RETURN QUERY SELECT 'created', p_judgment, p_choice, p_winner, now_done, now_skipped,
                        lease.campaign_status;
END
$$;
ALTER FUNCTION pairwise_submit SET plan_cache_mode = force_generic_plan;

ALTER TABLE items DROP COLUMN judgment_count;

-- A judgment and the labeler's next item in one round trip and one transaction (`POST
-- judgment?next=true`, and the labeling page): pairwise_submit, then, when it stored or
-- repeated the judgment and p_next_campaign is given, pairwise_next. The next_* columns are
-- NULL when no item was asked for or none is left.
CREATE FUNCTION pairwise_submit_next(
    p_assignment uuid, p_user uuid, p_judgment uuid, p_choice text, p_winner uuid,
    p_strength integer, p_rationale text, p_time_on_task_ms integer, p_request text,
    p_accepting text[],
    p_next_campaign uuid, p_exclude uuid, p_next_assignment uuid, p_keep_order boolean,
    p_lease_seconds double precision
) RETURNS TABLE (
    outcome text, judgment_id uuid, choice text, winner_candidate_id uuid,
    done bigint, skipped bigint, campaign_status text,
    next_assignment_id uuid, next_item_id uuid, next_shown_order uuid[],
    next_expires_at timestamptz, next_messages jsonb, next_texts text[], next_done bigint,
    next_skipped bigint
)
LANGUAGE plpgsql AS $$
DECLARE
    stored record;
BEGIN
    SELECT * INTO stored
    FROM pairwise_submit(p_assignment, p_user, p_judgment, p_choice, p_winner, p_strength,
                         p_rationale, p_time_on_task_ms, p_request, p_accepting) s;
    IF p_next_campaign IS NULL OR stored.outcome NOT IN ('created', 'repeated') THEN
        RETURN QUERY SELECT stored.outcome, stored.judgment_id, stored.choice,
                            stored.winner_candidate_id, stored.done, stored.skipped,
                            stored.campaign_status, NULL::uuid, NULL::uuid, NULL::uuid[],
                            NULL::timestamptz, NULL::jsonb, NULL::text[], NULL::bigint,
                            NULL::bigint;
        RETURN;
    END IF;
    RETURN QUERY
    SELECT stored.outcome, stored.judgment_id, stored.choice, stored.winner_candidate_id,
           stored.done, stored.skipped, stored.campaign_status,
           n.assignment_id, n.item_id, n.shown_order, n.expires_at, n.messages, n.texts,
           n.done, n.skipped
    FROM (SELECT 1) one
    LEFT JOIN pairwise_next(p_next_campaign, p_user, p_exclude, p_next_assignment,
                            p_keep_order, p_lease_seconds) n ON true;
END
$$;
