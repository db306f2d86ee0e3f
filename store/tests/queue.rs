//! The assignment queue against a real PostgreSQL, a fresh database per test.

use std::collections::{HashMap, HashSet};

use domain::{Choice, CurrentUser, JudgmentInput, NewCampaign, Role};
use store::access_cache::AccessCache;
use store::{PgPool, StoreError};
use uuid::Uuid;

async fn user(pool: &PgPool, email: &str, role: Role) -> CurrentUser {
    let id = store::accounts::create_user(pool, None, email, role, Some("not-a-real-hash"))
        .await
        .unwrap();
    CurrentUser {
        id,
        email: email.into(),
        role,
    }
}

fn line(i: usize) -> String {
    format!("{{\"prompt\":\"p{i}\",\"responses\":[\"a{i}\",\"b{i}\"]}}\n")
}

/// An active campaign with `items` pairs and the given labelers as members.
async fn campaign(
    pool: &PgPool,
    overlap: i32,
    items: usize,
    labelers: &[&CurrentUser],
) -> domain::Campaign {
    let admin = user(pool, &format!("admin-{}@x", Uuid::new_v4()), Role::Admin).await;
    let mut new = NewCampaign::named("c");
    new.overlap = overlap;
    let c = store::campaigns::create(pool, &admin, new).await.unwrap();
    let text: String = (0..items).map(line).collect();
    let report =
        store::import::import_reader(pool, c.id, store::import::Format::Jsonl, text.as_bytes())
            .await
            .unwrap();
    assert_eq!(report.items, items as u64, "{report:?}");
    for l in labelers {
        store::campaigns::add_member(
            pool,
            &admin,
            c.id,
            domain::NewMember {
                email: l.email.clone(),
                role: domain::MemberRole::Labeler,
            },
        )
        .await
        .unwrap();
    }
    let patch = domain::CampaignPatch {
        status: Some(domain::CampaignStatus::Active),
        ..Default::default()
    };
    store::campaigns::update(pool, &admin, c.id, patch)
        .await
        .unwrap()
}

/// Eight labelers, members of an active campaign of 12 items with overlap 3.
async fn race(pool: &PgPool) -> (Vec<CurrentUser>, domain::Campaign) {
    let mut labelers = Vec::new();
    for i in 0..8 {
        labelers.push(user(pool, &format!("l{i}@x"), Role::Labeler).await);
    }
    let refs: Vec<&CurrentUser> = labelers.iter().collect();
    let c = campaign(pool, 3, 12, &refs).await;
    (labelers, c)
}

fn answer(choice: Choice, request: &str) -> JudgmentInput {
    JudgmentInput {
        choice,
        strength: None,
        rationale: None,
        client_request_id: request.into(),
        time_on_task_ms: Some(100),
    }
}

/// The same race when every judgment also hands out the labeler's next item in its
/// transaction (`POST judgment?next=true`, the labeling page), through the servers' path: the
/// access cache, which remembers handed-out assignments.
/// `next` as a polling client asks it: a claim skips the rows other labelers' claims hold
/// locked at that instant (`SKIP LOCKED`), so one empty answer while others are still
/// claiming does not yet mean nothing is left. Asks up to three times, 25 ms apart.
async fn next_polled(
    access: &AccessCache,
    pool: &PgPool,
    c: &domain::Campaign,
    user_id: Uuid,
) -> Option<domain::NextItem> {
    for attempt in 0..3 {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        if let Some(item) = access.next(pool, c, user_id, None).await.unwrap() {
            return Some(item);
        }
    }
    None
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn judgments_that_hand_out_the_next_item_keep_overlap(pool: PgPool) {
    let (labelers, c) = race(&pool).await;
    let access = AccessCache::new();
    let mut tasks = Vec::new();
    for (n, labeler) in labelers.iter().enumerate() {
        let (pool, c, labeler, access) = (pool.clone(), c.clone(), labeler.clone(), access.clone());
        let id = labeler.id;
        tasks.push(tokio::spawn(async move {
            let mut judged = Vec::new();
            let mut item = next_polled(&access, &pool, &c, id).await;
            while let Some(current) = item {
                let shown: Vec<Uuid> = current.responses.iter().map(|r| r.id).collect();
                let (ack, next) = access
                    .submit(
                        &pool,
                        &labeler,
                        current.assignment_id,
                        answer(Choice::B, &format!("{n}-{}", judged.len())),
                        Some(store::queue::HandOut::default()),
                    )
                    .await
                    .unwrap();
                assert!(ack.created);
                assert_eq!(ack.winner_candidate_id, Some(shown[1]));
                assert_ne!(
                    next.as_ref().map(|n| n.assignment_id),
                    Some(current.assignment_id),
                    "the judged lease is not handed out again"
                );
                judged.push(current.item_id);
                item = match next {
                    Some(next) => Some(next),
                    None => next_polled(&access, &pool, &c, id).await,
                };
            }
            (id, judged)
        }));
    }
    let mut per_item: HashMap<Uuid, usize> = HashMap::new();
    for task in tasks {
        let (user, judged) = task.await.unwrap();
        let distinct: HashSet<&Uuid> = judged.iter().collect();
        assert_eq!(
            distinct.len(),
            judged.len(),
            "labeler {user} saw an item twice"
        );
        for item in judged {
            *per_item.entry(item).or_default() += 1;
        }
    }
    assert_eq!(per_item.len(), 12);
    assert!(per_item.values().all(|&n| n == 3), "{per_item:?}");
    let open: i64 = sqlx::query_scalar("SELECT count(*) FROM assignments WHERE status = 'leased'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(open, 0, "no lease is left behind");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn racing_labelers_never_exceed_overlap_or_repeat(pool: PgPool) {
    let (labelers, c) = race(&pool).await;
    // Each labeler runs two concurrent loops, so claims race within and across labelers.
    let mut tasks = Vec::new();
    for (n, labeler) in labelers.iter().enumerate() {
        for lane in 0..2 {
            let (pool, c, labeler) = (pool.clone(), c.clone(), labeler.clone());
            let id = labeler.id;
            tasks.push(tokio::spawn(async move {
                // Hands out as `queue::next`; the judgments below take `queue::submit`, which
                // does not read what the cache remembers.
                let access = AccessCache::new();
                let mut judged = Vec::new();
                let mut k = 0;
                while let Some(item) = next_polled(&access, &pool, &c, id).await {
                    k += 1;
                    let request = format!("{n}-{lane}-{k}");
                    match store::queue::submit(
                        &pool,
                        &labeler,
                        item.assignment_id,
                        answer(Choice::A, &request),
                    )
                    .await
                    {
                        Ok(ack) if ack.created => judged.push(item.item_id),
                        // The other lane of the same labeler answered this lease first.
                        Ok(_) | Err(StoreError::Conflict(_)) => {}
                        Err(e) => panic!("submit failed: {e}"),
                    }
                }
                (id, judged)
            }));
        }
    }
    let mut per_item: HashMap<Uuid, usize> = HashMap::new();
    let mut seen: HashSet<(Uuid, Uuid)> = HashSet::new();
    for task in tasks {
        let (user, judged) = task.await.unwrap();
        for item in judged {
            assert!(
                seen.insert((user, item)),
                "labeler {user} judged item {item} twice"
            );
            *per_item.entry(item).or_default() += 1;
        }
    }
    assert_eq!(per_item.len(), 12);
    assert!(per_item.values().all(|&n| n == 3), "{per_item:?}");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM judgments")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 36);
    let over: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT item_id FROM judgments GROUP BY item_id HAVING count(*) > 3) o",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(over, 0);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn repeated_submit_stores_one_judgment(pool: PgPool) {
    let l = user(&pool, "l@x", Role::Labeler).await;
    let c = campaign(&pool, 1, 2, &[&l]).await;
    let item = store::queue::next(&pool, &c, l.id, None)
        .await
        .unwrap()
        .unwrap();
    let first = store::queue::submit(&pool, &l, item.assignment_id, answer(Choice::B, "r1"))
        .await
        .unwrap();
    let again = store::queue::submit(&pool, &l, item.assignment_id, answer(Choice::B, "r1"))
        .await
        .unwrap();
    assert!(first.created && !again.created);
    assert_eq!(first.judgment_id, again.judgment_id);
    assert_eq!(first.winner_candidate_id, Some(item.responses[1].id));
    // A different request for the judged assignment is refused, not stored.
    let other = store::queue::submit(&pool, &l, item.assignment_id, answer(Choice::A, "r2")).await;
    assert!(matches!(other, Err(StoreError::Conflict(_))), "{other:?}");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM judgments")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 1);
    // Concurrent duplicates also store one.
    let item = store::queue::next(&pool, &c, l.id, None)
        .await
        .unwrap()
        .unwrap();
    let submits = (0..6).map(|_| {
        let (pool, l) = (pool.clone(), l.clone());
        tokio::spawn(async move {
            store::queue::submit(&pool, &l, item.assignment_id, answer(Choice::Tie, "dup")).await
        })
    });
    let created = futures::future::join_all(submits)
        .await
        .into_iter()
        .filter(|r| r.as_ref().unwrap().as_ref().unwrap().created)
        .count();
    assert_eq!(created, 1);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM judgments")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 2);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn expired_leases_return_items_to_the_queue(pool: PgPool) {
    let (a, b) = (
        user(&pool, "a@x", Role::Labeler).await,
        user(&pool, "b@x", Role::Labeler).await,
    );
    let c = campaign(&pool, 1, 1, &[&a, &b]).await;
    let leased = store::queue::next(&pool, &c, a.id, None)
        .await
        .unwrap()
        .unwrap();
    // The only slot is leased to a: b gets nothing, and a gets the same lease again.
    assert!(store::queue::next(&pool, &c, b.id, None)
        .await
        .unwrap()
        .is_none());
    let again = store::queue::next(&pool, &c, a.id, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.assignment_id, leased.assignment_id);
    // Time passes: the lease runs out, and the item goes to b.
    sqlx::query("UPDATE assignments SET expires_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();
    let taken = store::queue::next(&pool, &c, b.id, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.item_id, leased.item_id);
    store::queue::submit(&pool, &b, taken.assignment_id, answer(Choice::A, "b1"))
        .await
        .unwrap();
    // a's late answer finds the slot taken and is refused; nothing extra is stored.
    let late = store::queue::submit(&pool, &a, leased.assignment_id, answer(Choice::B, "a1")).await;
    assert!(matches!(late, Err(StoreError::Conflict(_))), "{late:?}");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM judgments")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 1);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn late_answers_paused_and_closed_campaigns_and_progress(pool: PgPool) {
    let a = user(&pool, "a@x", Role::Labeler).await;
    let outsider = user(&pool, "o@x", Role::Labeler).await;
    let mut c = campaign(&pool, 2, 3, &[&a]).await;
    let first = store::queue::next(&pool, &c, a.id, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((first.progress.done, first.progress.skipped), (0, 0));
    // Someone else's assignment does not exist for them.
    let foreign = store::queue::submit(
        &pool,
        &outsider,
        first.assignment_id,
        answer(Choice::A, "o"),
    )
    .await;
    assert!(matches!(foreign, Err(StoreError::NotFound)), "{foreign:?}");
    // A lease that ran out while its item still has a free slot: the late answer is taken.
    sqlx::query("UPDATE assignments SET expires_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();
    let second = store::queue::next(&pool, &c, a.id, Some(first.assignment_id))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(second.item_id, first.item_id);
    let late = store::queue::submit(&pool, &a, first.assignment_id, answer(Choice::A, "late"))
        .await
        .unwrap();
    assert!(late.created);
    assert_eq!((late.progress.done, late.progress.skipped), (1, 0));
    let remaining: i32 = sqlx::query_scalar("SELECT remaining FROM items WHERE id = $1")
        .bind(first.item_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(remaining, 1, "the late judgment took one of the two slots");
    let third = store::queue::next(&pool, &c, a.id, Some(second.assignment_id))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(third.item_id, second.item_id);
    // Pausing loses no work: a leased item is still judged. Closing stops judgments, but a
    // repeated request still gets its stored answer.
    let admin = user(&pool, "admin@x", Role::Admin).await;
    for (status, leased, request, accepted) in [
        (domain::CampaignStatus::Paused, &second, "p", true),
        (domain::CampaignStatus::Closed, &third, "c", false),
    ] {
        let patch = domain::CampaignPatch {
            status: Some(status),
            ..Default::default()
        };
        c = store::campaigns::update(&pool, &admin, c.id, patch)
            .await
            .unwrap();
        let paused_next = store::queue::next(&pool, &c, a.id, None).await;
        assert!(
            matches!(paused_next, Err(StoreError::Conflict(_))),
            "{paused_next:?}"
        );
        let ack =
            store::queue::submit(&pool, &a, leased.assignment_id, answer(Choice::B, request)).await;
        if accepted {
            let ack = ack.unwrap();
            assert_eq!((ack.progress.done, ack.progress.skipped), (2, 0));
        } else {
            assert!(
                matches!(&ack, Err(StoreError::Conflict(m)) if m.contains("closed")),
                "{ack:?}"
            );
        }
    }
    let repeat = store::queue::submit(&pool, &a, second.assignment_id, answer(Choice::B, "p"))
        .await
        .unwrap();
    assert!(!repeat.created);
    assert_eq!(
        store::queue::progress(&pool, c.id, a.id).await.unwrap(),
        domain::Progress {
            done: 2,
            skipped: 0
        }
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn skipped_items_go_to_someone_else(pool: PgPool) {
    let (a, b) = (
        user(&pool, "a@x", Role::Labeler).await,
        user(&pool, "b@x", Role::Labeler).await,
    );
    let c = campaign(&pool, 1, 1, &[&a, &b]).await;
    let item = store::queue::next(&pool, &c, a.id, None)
        .await
        .unwrap()
        .unwrap();
    let ack = store::queue::submit(&pool, &a, item.assignment_id, answer(Choice::Skip, "s"))
        .await
        .unwrap();
    assert_eq!((ack.progress.done, ack.progress.skipped), (0, 1));
    assert!(
        store::queue::next(&pool, &c, a.id, None)
            .await
            .unwrap()
            .is_none(),
        "never the same item twice"
    );
    let for_b = store::queue::next(&pool, &c, b.id, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(for_b.item_id, item.item_id);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn prefetch_returns_a_second_item(pool: PgPool) {
    let a = user(&pool, "a@x", Role::Labeler).await;
    let c = campaign(&pool, 1, 3, &[&a]).await;
    let first = store::queue::next(&pool, &c, a.id, None)
        .await
        .unwrap()
        .unwrap();
    let second = store::queue::next(&pool, &c, a.id, Some(first.assignment_id))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(first.item_id, second.item_id);
    // Reloading shows the oldest lease again rather than claiming a third.
    let reload = store::queue::next(&pool, &c, a.id, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reload.assignment_id, first.assignment_id);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_failed_import_writes_nothing(pool: PgPool) {
    let admin = user(&pool, "admin@x", Role::Admin).await;
    let c = store::campaigns::create(&pool, &admin, NewCampaign::named("c"))
        .await
        .unwrap();
    // 1,200 good lines (more than one insert batch) and two bad ones near the end.
    let mut text: String = (0..1200).map(line).collect();
    text.push_str("{\"prompt\":\"p\",\"responses\":[\"only one\"]}\n");
    text.push_str("not json\n");
    let report =
        store::import::import_reader(&pool, c.id, store::import::Format::Jsonl, text.as_bytes())
            .await
            .unwrap();
    assert_eq!(report.imported, 0);
    assert_eq!(report.error_count, 2);
    assert_eq!(report.errors[0].line, 1201);
    assert!(
        report.errors[0].message.contains("at least 2 responses"),
        "{report:?}"
    );
    assert_eq!(report.errors[1].line, 1202);
    for table in ["prompts", "candidates", "items"] {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(n, 0, "{table} has rows after a failed import");
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn csv_import_and_k_way_pairs(pool: PgPool) {
    let admin = user(&pool, "admin@x", Role::Admin).await;
    let c = store::campaigns::create(&pool, &admin, NewCampaign::named("c"))
        .await
        .unwrap();
    let csv =
        "prompt,response_a,response_b,gold\n\"Say \"\"hi\"\", please\",\"hi, there\",hello,0\n";
    let report =
        store::import::import_reader(&pool, c.id, store::import::Format::Csv, csv.as_bytes())
            .await
            .unwrap();
    assert_eq!(
        (report.imported, report.items, report.error_count),
        (1, 1, 0),
        "{report:?}"
    );
    let text: String = sqlx::query_scalar("SELECT text FROM candidates WHERE position = 0")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(text, "hi, there");
    let jsonl =
        "{\"prompt\":[{\"role\":\"user\",\"content\":\"q\"}],\"responses\":[\"x\",\"y\",\"z\"]}\n";
    let report =
        store::import::import_reader(&pool, c.id, store::import::Format::Jsonl, jsonl.as_bytes())
            .await
            .unwrap();
    assert_eq!(
        (report.imported, report.items),
        (1, 3),
        "three responses make C(3,2) pairs"
    );
}
