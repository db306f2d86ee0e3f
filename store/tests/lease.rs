//! The lease background work is claimed with, on exports: a lapsed lease is taken over, the
//! worker that lost it records nothing, attempts are bounded, and what `pairwise export`
//! writes into a folder of its own host is never taken over.

use std::time::Duration;

use domain::{ExportCounts, ExportFormat, ExportSpec, ExportStatus};
use store::PgPool;
use uuid::Uuid;

const LEASE: Duration = Duration::from_secs(60);

async fn lapse(pool: &PgPool) {
    sqlx::query("UPDATE exports SET lease_expires_at = now() - interval '1 second'")
        .execute(pool)
        .await
        .unwrap();
}

async fn status(pool: &PgPool, id: Uuid) -> (ExportStatus, Option<String>) {
    let (record, _) = store::export::get(pool, id).await.unwrap();
    (record.status, record.error)
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn lapsed_exports_are_taken_over_but_not_those_the_cli_writes(pool: PgPool) {
    let spec = ExportSpec::new(vec![Uuid::now_v7()], ExportFormat::Trl);
    let (queued, cli) = (Uuid::now_v7(), Uuid::now_v7());
    store::export::create(&pool, queued, None, &spec, &format!("exports/{queued}"))
        .await
        .unwrap();
    store::export::create_running(&pool, cli, &spec, "/tmp/out", "cli:1", LEASE)
        .await
        .unwrap();

    let first = store::export::claim(&pool, "w1", LEASE).await.unwrap();
    assert_eq!(first.map(|c| c.id), Some(queued));
    assert!(store::export::claim(&pool, "w2", LEASE)
        .await
        .unwrap()
        .is_none());

    // Both leases run out: the worker's export is taken over, the CLI's is failed.
    lapse(&pool).await;
    let second = store::export::claim(&pool, "w2", LEASE).await.unwrap();
    assert_eq!(second.as_ref().map(|c| c.id), Some(queued));
    assert_eq!(second.unwrap().key, format!("exports/{queued}"));
    let (cli_status, cli_error) = status(&pool, cli).await;
    assert_eq!(cli_status, ExportStatus::Failed);
    assert!(cli_error.unwrap().contains("stopped"));
    let counts = ExportCounts::default();
    assert!(
        !store::export::finish(&pool, queued, "w1", &[], &counts)
            .await
            .unwrap(),
        "the worker that lost the lease records nothing"
    );
    assert!(!store::export::renew(&pool, queued, "w1", LEASE)
        .await
        .unwrap());
    assert!(store::export::renew(&pool, queued, "w2", LEASE)
        .await
        .unwrap());

    // The third attempt is the last one.
    lapse(&pool).await;
    assert!(store::export::claim(&pool, "w3", LEASE)
        .await
        .unwrap()
        .is_some());
    lapse(&pool).await;
    assert!(store::export::claim(&pool, "w4", LEASE)
        .await
        .unwrap()
        .is_none());
    let (status, error) = status(&pool, queued).await;
    assert_eq!(status, ExportStatus::Failed);
    assert!(
        error.unwrap().contains("stopped 3 times"),
        "attempts are bounded"
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_cancelled_export_is_neither_claimed_nor_recorded(pool: PgPool) {
    let spec = ExportSpec::new(vec![Uuid::now_v7()], ExportFormat::Trl);
    let (running, queued) = (Uuid::now_v7(), Uuid::now_v7());
    for id in [running, queued] {
        store::export::create(&pool, id, None, &spec, &format!("exports/{id}"))
            .await
            .unwrap();
    }
    let claimed = store::export::claim(&pool, "w1", LEASE).await.unwrap();
    assert_eq!(claimed.map(|c| c.id), Some(running));
    let actor = store::accounts::create_user(&pool, None, "admin@x", domain::Role::Admin, None)
        .await
        .unwrap();
    assert!(store::export::cancel(&pool, actor, running).await.unwrap());
    assert!(store::export::cancel(&pool, actor, queued).await.unwrap());
    assert!(
        !store::export::cancel(&pool, actor, queued).await.unwrap(),
        "already ended"
    );
    assert!(!store::export::renew(&pool, running, "w1", LEASE)
        .await
        .unwrap());
    let counts = ExportCounts::default();
    assert!(!store::export::finish(&pool, running, "w1", &[], &counts)
        .await
        .unwrap());
    assert!(store::export::claim(&pool, "w2", LEASE)
        .await
        .unwrap()
        .is_none());
    for id in [running, queued] {
        assert_eq!(status(&pool, id).await.0, ExportStatus::Cancelled);
    }
}
