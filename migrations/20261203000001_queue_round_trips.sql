-- The labeling loop in one database round trip per request: `next` and a judgment's writes run
-- as functions inside PostgreSQL instead of 6 and 9 statements sent one at a time, and a
-- labeler's progress is a kept count instead of a count over all their assignments.

-- Every labeler's claims and judgments took a FOR KEY SHARE lock on the campaign's row (the
-- foreign keys of assignments.campaign_id and judgments.campaign_id), so concurrent labelers made
-- PostgreSQL build a multixact for nearly every write (~10% of its CPU in the labeling benchmark).
-- These references hold through the rows that are still checked: a judgment's assignment, an
-- assignment's item and user, whose ON DELETE CASCADE chains also remove these rows; the queue
-- functions copy the campaign, item and user from those rows.
ALTER TABLE judgments
    DROP CONSTRAINT judgments_item_id_fkey,
    DROP CONSTRAINT judgments_campaign_id_fkey,
    DROP CONSTRAINT judgments_user_id_fkey;
ALTER TABLE assignments DROP CONSTRAINT assignments_campaign_id_fkey;

-- Done and skipped assignments per labeler and campaign, kept by pairwise_submit.
CREATE TABLE labeler_progress (
    campaign_id uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    done        bigint NOT NULL DEFAULT 0,
    skipped     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (campaign_id, user_id)
);
INSERT INTO labeler_progress (campaign_id, user_id, done, skipped)
SELECT campaign_id, user_id,
       count(*) FILTER (WHERE status = 'done'), count(*) FILTER (WHERE status = 'skipped')
FROM assignments
WHERE status IN ('done', 'skipped')
GROUP BY campaign_id, user_id;

-- Marks a campaign's expired leases and returns their slots to the queue; the number reaped.
CREATE FUNCTION pairwise_reap_expired(p_campaign uuid) RETURNS bigint
LANGUAGE sql AS $$
    WITH expired AS (
        UPDATE assignments SET status = 'expired'
        WHERE campaign_id = p_campaign AND status = 'leased' AND expires_at <= now()
        RETURNING item_id
    ), freed AS (
        UPDATE items SET remaining = remaining + e.n
        FROM (SELECT item_id, count(*)::int AS n FROM expired GROUP BY item_id) e
        WHERE items.id = e.item_id
        RETURNING 1
    )
    SELECT count(*) FROM expired
$$;

-- The labeler's next item: a live lease they hold (other than p_exclude, the item on their
-- screen while they prefetch the one after), else a newly claimed one; expired leases are
-- reaped only when nothing is open. Returns the item's content in shown order and the
-- labeler's progress, or no row when nothing is left for them.
CREATE FUNCTION pairwise_next(
    p_campaign uuid, p_user uuid, p_exclude uuid, p_assignment uuid, p_keep_order boolean,
    p_lease_seconds double precision
) RETURNS TABLE (
    assignment_id uuid, item_id uuid, shown_order uuid[], expires_at timestamptz,
    messages jsonb, texts text[], done bigint, skipped bigint
)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    lease assignments%ROWTYPE;
BEGIN
    SELECT * INTO lease FROM assignments a
    WHERE a.user_id = p_user AND a.campaign_id = p_campaign AND a.status = 'leased'
      AND a.expires_at > now() AND a.id IS DISTINCT FROM p_exclude
    ORDER BY a.leased_at
    LIMIT 1;
    IF NOT FOUND THEN
        -- Claim the first open item the labeler has never had: lock its row (SKIP LOCKED, so
        -- racing labelers take different items), take one of its slots and lease it. Written
        -- out here rather than as an SQL function, which PostgreSQL would plan on every call.
        FOR attempt IN 1..2 LOOP
            WITH picked AS (
                SELECT i.id FROM items i
                WHERE i.campaign_id = p_campaign AND i.remaining > 0
                  AND NOT EXISTS (SELECT 1 FROM assignments a
                                  WHERE a.item_id = i.id AND a.user_id = p_user)
                ORDER BY i.seq
                LIMIT 1
                FOR UPDATE SKIP LOCKED
            ), taken AS (
                UPDATE items SET remaining = remaining - 1 FROM picked
                WHERE items.id = picked.id
                RETURNING items.id, items.candidate_ids
            )
            INSERT INTO assignments (id, item_id, campaign_id, user_id, shown_order, status,
                                     expires_at)
            SELECT p_assignment, taken.id, p_campaign, p_user,
                   CASE WHEN p_keep_order THEN taken.candidate_ids
                        ELSE ARRAY[taken.candidate_ids[2], taken.candidate_ids[1]] END,
                   'leased', now() + make_interval(secs => p_lease_seconds)
            FROM taken
            RETURNING * INTO lease;
            -- Only when nothing is open do expired leases matter: reap them and retry once.
            EXIT WHEN FOUND OR attempt = 2 OR pairwise_reap_expired(p_campaign) = 0;
        END LOOP;
        IF lease.id IS NULL THEN
            RETURN;
        END IF;
    END IF;
    RETURN QUERY
    SELECT lease.id, lease.item_id, lease.shown_order, lease.expires_at, p.messages,
           ARRAY(SELECT c.text
                 FROM unnest(lease.shown_order) WITH ORDINALITY AS s (id, n)
                 JOIN candidates c ON c.id = s.id
                 ORDER BY s.n),
           coalesce(lp.done, 0), coalesce(lp.skipped, 0)
    FROM items i
    JOIN prompts p ON p.id = i.prompt_id
    LEFT JOIN labeler_progress lp ON lp.campaign_id = p_campaign AND lp.user_id = p_user
    WHERE i.id = lease.item_id;
END
$$;

-- Stores a judgment (already validated against the campaign's rules by the caller) for the
-- caller's assignment, atomically. `outcome` says what happened:
--   created         stored now
--   repeated        this client_request_id was stored before: its judgment is returned
--   request_reused  this client_request_id was used for another assignment
--   not_found       no such assignment of this user
--   judged          the assignment already has a different judgment
--   not_accepting   the campaign's status is not in p_accepting
--   taken           the lease expired and other labelers filled the item's slots
CREATE FUNCTION pairwise_submit(
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
    -- A skip hands the slot back to the queue; a judgment fills it for good.
    UPDATE items SET remaining = remaining + CASE WHEN skip THEN 1 ELSE 0 END,
                     judgment_count = judgment_count + CASE WHEN skip THEN 0 ELSE 1 END
    WHERE id = lease.item_id;
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

-- Every statement in these functions is an equality lookup on an index, so one plan per
-- connection serves every call; PostgreSQL's default re-planned some of them on every call
-- (~13% of its CPU in the labeling benchmark).
ALTER FUNCTION pairwise_next SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION pairwise_submit SET plan_cache_mode = force_generic_plan;
