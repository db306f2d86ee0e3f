//! The loop every kind of worker runs, and workers' names.

use std::time::Duration;

const IDLE_POLL: Duration = Duration::from_millis(1000);

/// A unique name for a worker of `kind`: host, process and a counter of the process.
pub fn worker_name(kind: &str) -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let index = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    format!("{host}:{}:{index}:{kind}", std::process::id())
}

/// A worker's loop: `work` once per turn (true: it found work, go again at once), sleeping
/// [`IDLE_POLL`] when there was nothing or it failed, until `stop` turns true.
pub async fn poll<F, Fut>(name: &str, stop: tokio::sync::watch::Receiver<bool>, mut work: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    loop {
        if *stop.borrow() {
            return;
        }
        match work().await {
            Ok(true) => {}
            Ok(false) => {
                let mut stop = stop.clone();
                tokio::select! {
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = stop.changed() => {}
                }
            }
            Err(e) => {
                tracing::error!("worker {name}: {e:#}");
                tokio::time::sleep(IDLE_POLL).await;
            }
        }
    }
}
