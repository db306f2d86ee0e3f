//! Passwords: argon2id hashes, made and checked on blocking threads, a few at a time, and
//! generated passwords.

use std::sync::LazyLock;
use std::time::Duration;

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Every hashing slot stayed taken while the caller waited: refuse (429) rather than
    /// queue without bound.
    #[error("too many passwords are being checked at once; try again in a moment")]
    Busy,
    #[error("hashing failed: {0}")]
    Hashing(String),
}

/// Bounds concurrent argon2 work: each run holds 19 MiB and a core for tens of milliseconds,
/// so unbounded parallel logins or sign-ups would exhaust the server's memory and cores.
struct Gate {
    slots: Semaphore,
    wait: Duration,
}

impl Gate {
    fn new(slots: usize, wait: Duration) -> Self {
        Self {
            slots: Semaphore::new(slots.max(1)),
            wait,
        }
    }

    /// Runs `work` on a blocking thread once a slot is free, or answers `Busy`.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let _slot = tokio::time::timeout(self.wait, self.slots.acquire())
            .await
            .map_err(|_| PasswordError::Busy)?
            .map_err(|_| PasswordError::Busy)?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| PasswordError::Hashing(format!("the hashing thread failed: {e}")))
    }
}

/// One slot per core; a request waits up to five seconds for one.
static GATE: LazyLock<Gate> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    Gate::new(cores, Duration::from_secs(5))
});

/// OWASP's argon2id recommendation: 19 MiB of memory, 2 passes, 1 lane.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes on a blocking thread: argon2 takes tens of milliseconds by design.
/// The password's strength is the caller's to check first (`domain::validate_password`).
pub async fn hash_password(password: String) -> Result<String, PasswordError> {
    GATE.run(move || {
        let salt = SaltString::generate(&mut OsRng);
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| PasswordError::Hashing(e.to_string()))
    })
    .await?
}

/// Whether `password` matches `hash` (a malformed hash matches nothing).
pub async fn verify_password(password: String, hash: String) -> Result<bool, PasswordError> {
    GATE.run(move || {
        PasswordHash::new(&hash)
            .map(|parsed| {
                argon2()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
}

/// A fresh random password for the first admin: 20 characters from a 56-letter alphabet
/// without look-alikes (~116 bits).
pub fn generate_password() -> String {
    use rand::seq::SliceRandom;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    (0..20)
        .map(|_| *ALPHABET.choose(&mut rng).unwrap_or(&b'x') as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashing_beyond_the_slots_is_refused_after_the_wait() {
        let gate = Gate::new(1, Duration::from_millis(50));
        let held = gate.slots.acquire().await.expect("a slot");
        assert!(matches!(gate.run(|| 1).await, Err(PasswordError::Busy)));
        drop(held);
        assert_eq!(gate.run(|| 2).await.expect("a free slot"), 2);
    }

    #[tokio::test]
    async fn a_hash_verifies_only_its_password() {
        let hash = hash_password("correct horse battery".into())
            .await
            .expect("hash");
        assert!(
            verify_password("correct horse battery".into(), hash.clone())
                .await
                .expect("verify")
        );
        assert!(!verify_password("wrong".into(), hash).await.expect("verify"));
        assert!(!verify_password("x".into(), "not a hash".into())
            .await
            .expect("verify"));
    }

    #[test]
    fn generated_passwords_are_long_and_differ() {
        let (a, b) = (generate_password(), generate_password());
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
    }
}
