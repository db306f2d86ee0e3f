//! Users, sessions, API tokens, invitations and login throttling.
//!
//! Secrets (session cookies, API tokens, invite links) are 256-bit random strings handed out
//! once; only their SHA-256 is stored, so a database leak yields no usable credential.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use chrono::{DateTime, Duration, Utc};
use domain::{CurrentUser, Role, UserSummary};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{audit, stored, Result, StoreError};

/// A fresh secret with a readable prefix (`pws_` session, `pwt_` token, `pwi_` invite).
pub fn new_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

pub fn secret_hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// A user row with what login needs.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: CurrentUser,
    pub password_hash: Option<String>,
    pub disabled: bool,
}

pub async fn count_users(pool: &PgPool) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(pool)
        .await?)
}

/// Creates a user; `password_hash` is an argon2id PHC string, or none for an invitation.
pub async fn create_user(
    pool: &PgPool,
    actor: Option<Uuid>,
    email: &str,
    role: Role,
    password_hash: Option<&str>,
) -> Result<Uuid> {
    let email = domain::normalize_email(email)?;
    let id = Uuid::now_v7();
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO users (id, email, role, password_hash) VALUES ($1, $2, $3, $4)
         ON CONFLICT (email) DO NOTHING",
    )
    .bind(id)
    .bind(&email)
    .bind(role.as_str())
    .bind(password_hash)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(StoreError::Conflict(format!(
            "a user {email} already exists"
        )));
    }
    audit(
        &mut tx,
        actor,
        "user.create",
        &id.to_string(),
        serde_json::json!({ "email": email, "role": role }),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// `id, email, role` of a user.
#[derive(sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    email: String,
    role: String,
}

impl TryFrom<UserRow> for CurrentUser {
    type Error = StoreError;

    fn try_from(row: UserRow) -> Result<Self> {
        Ok(CurrentUser {
            id: row.id,
            email: row.email,
            role: stored(&row.role)?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct CredentialsRow {
    #[sqlx(flatten)]
    user: UserRow,
    password_hash: Option<String>,
    disabled: bool,
}

pub async fn credentials(pool: &PgPool, email: &str) -> Result<Option<Credentials>> {
    let Ok(email) = domain::normalize_email(email) else {
        return Ok(None);
    };
    let row = sqlx::query_as::<_, CredentialsRow>(
        "SELECT id, email, role, password_hash, disabled FROM users WHERE email = $1",
    )
    .bind(email)
    .fetch_optional(pool)
    .await?;
    row.map(|row| {
        Ok(Credentials {
            user: row.user.try_into()?,
            password_hash: row.password_hash,
            disabled: row.disabled,
        })
    })
    .transpose()
}

pub async fn user_by_email(pool: &PgPool, email: &str) -> Result<CurrentUser> {
    match credentials(pool, email).await? {
        Some(c) if !c.disabled => Ok(c.user),
        _ => Err(StoreError::NotFound),
    }
}

#[derive(sqlx::FromRow)]
struct UserSummaryRow {
    #[sqlx(flatten)]
    user: UserRow,
    disabled: bool,
    has_password: bool,
}

pub async fn list_users(pool: &PgPool) -> Result<Vec<UserSummary>> {
    let rows = sqlx::query_as::<_, UserSummaryRow>(
        "SELECT id, email, role, disabled, password_hash IS NOT NULL AS has_password
         FROM users ORDER BY email",
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|row| {
            let user = CurrentUser::try_from(row.user)?;
            Ok(UserSummary {
                id: user.id,
                email: user.email,
                role: user.role,
                disabled: row.disabled,
                has_password: row.has_password,
            })
        })
        .collect()
}

/// Disabling also ends the user's sessions and revokes their API tokens.
pub async fn set_disabled(pool: &PgPool, actor: Uuid, user_id: Uuid, disabled: bool) -> Result<()> {
    if actor == user_id && disabled {
        return Err(StoreError::Conflict("you cannot disable yourself".into()));
    }
    let mut tx = pool.begin().await?;
    let updated = sqlx::query("UPDATE users SET disabled = $2 WHERE id = $1")
        .bind(user_id)
        .bind(disabled)
        .execute(&mut *tx)
        .await?;
    if updated.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    if disabled {
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE api_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    }
    let action = if disabled {
        "user.disable"
    } else {
        "user.enable"
    };
    audit(
        &mut tx,
        Some(actor),
        action,
        &user_id.to_string(),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn set_password_hash(pool: &PgPool, user_id: Uuid, password_hash: &str) -> Result<()> {
    sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
        .bind(user_id)
        .bind(password_hash)
        .execute(pool)
        .await?;
    Ok(())
}

pub const SESSION_DAYS: i64 = 14;

/// Starts a session and returns the cookie value.
pub async fn create_session(pool: &PgPool, user_id: Uuid) -> Result<String> {
    let secret = new_secret("pws_");
    sqlx::query("INSERT INTO sessions (token_hash, user_id, expires_at) VALUES ($1, $2, $3)")
        .bind(secret_hash(&secret))
        .bind(user_id)
        .bind(Utc::now() + Duration::days(SESSION_DAYS))
        .execute(pool)
        .await?;
    Ok(secret)
}

pub async fn delete_session(pool: &PgPool, secret: &str) -> Result<()> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
        .bind(secret_hash(secret))
        .execute(pool)
        .await?;
    Ok(())
}

/// The enabled user behind a session cookie or an API token, with when that secret stops
/// working by itself (sessions expire; tokens last until revoked).
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: CurrentUser,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct CallerRow {
    #[sqlx(flatten)]
    user: UserRow,
    expires_at: Option<DateTime<Utc>>,
}

/// The enabled user behind a session cookie or an API token, if any.
pub async fn user_for_secret(pool: &PgPool, secret: &str) -> Result<Option<Caller>> {
    let sql = if secret.starts_with("pwt_") {
        "SELECT u.id, u.email, u.role, NULL::timestamptz AS expires_at
         FROM api_tokens t JOIN users u ON u.id = t.user_id
         WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND NOT u.disabled"
    } else {
        "SELECT u.id, u.email, u.role, s.expires_at FROM sessions s JOIN users u ON u.id = s.user_id
         WHERE s.token_hash = $1 AND s.expires_at > now() AND NOT u.disabled"
    };
    let row = sqlx::query_as::<_, CallerRow>(sql)
        .bind(secret_hash(secret))
        .fetch_optional(pool)
        .await?;
    row.map(|row| {
        Ok(Caller {
            user: row.user.try_into()?,
            expires_at: row.expires_at,
        })
    })
    .transpose()
}

/// Creates an API token for an enabled user and returns it; only its hash is kept.
pub async fn create_api_token(pool: &PgPool, email: &str, name: &str) -> Result<String> {
    let user = user_by_email(pool, email).await?;
    let secret = new_secret("pwt_");
    let mut tx = pool.begin().await?;
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO api_tokens (id, token_hash, user_id, name) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(secret_hash(&secret))
        .bind(user.id)
        .bind(name)
        .execute(&mut *tx)
        .await?;
    audit(
        &mut tx,
        Some(user.id),
        "token.create",
        &id.to_string(),
        serde_json::json!({ "name": name }),
    )
    .await?;
    tx.commit().await?;
    Ok(secret)
}

pub const INVITE_DAYS: i64 = 7;

/// Creates a user without a password and returns the one-time secret that lets them set one.
pub async fn invite_user(
    pool: &PgPool,
    actor: Uuid,
    email: &str,
    role: Role,
) -> Result<(Uuid, String)> {
    let user_id = create_user(pool, Some(actor), email, role, None).await?;
    let secret = new_secret("pwi_");
    sqlx::query("INSERT INTO invites (token_hash, user_id, expires_at) VALUES ($1, $2, $3)")
        .bind(secret_hash(&secret))
        .bind(user_id)
        .bind(Utc::now() + Duration::days(INVITE_DAYS))
        .execute(pool)
        .await?;
    Ok((user_id, secret))
}

/// The e-mail an unused, unexpired invitation is for.
pub async fn invite_email(pool: &PgPool, secret: &str) -> Result<String> {
    sqlx::query_scalar(
        "SELECT u.email FROM invites i JOIN users u ON u.id = i.user_id
         WHERE i.token_hash = $1 AND i.used_at IS NULL AND i.expires_at > now() AND NOT u.disabled",
    )
    .bind(secret_hash(secret))
    .fetch_optional(pool)
    .await?
    .ok_or(StoreError::NotFound)
}

/// Spends an invitation, setting the user's password; returns the user for a new session.
pub async fn accept_invite(pool: &PgPool, secret: &str, password_hash: &str) -> Result<Uuid> {
    let mut tx = pool.begin().await?;
    let user_id: Uuid = sqlx::query_scalar(
        "UPDATE invites SET used_at = now()
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()
         RETURNING user_id",
    )
    .bind(secret_hash(secret))
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StoreError::NotFound)?;
    sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1 AND NOT disabled")
        .bind(user_id)
        .bind(password_hash)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(user_id)
}

/// Failed logins allowed per account from one client address, and per client address over
/// all accounts, in [`THROTTLE_WINDOW_MINUTES`]. Counting per account *and* address means a
/// stranger who knows an e-mail locks out only themselves, never its owner elsewhere.
pub const MAX_FAILURES_PER_EMAIL: i64 = 10;
pub const MAX_FAILURES_PER_IP: i64 = 50;
pub const THROTTLE_WINDOW_MINUTES: i64 = 15;

/// Starts a login attempt: refuses it when its account failed too often from this address,
/// or the address failed too often overall, and otherwise records it as failed before any
/// password is checked. Attempts from one address take turns here, so a burst of parallel
/// attempts is counted one by one and at most the limit get through. Returns the attempt,
/// for [`login_succeeded`].
pub async fn begin_login(pool: &PgPool, email: &str, ip: &str) -> Result<i64> {
    let email = email.trim().to_lowercase();
    let since: DateTime<Utc> = Utc::now() - Duration::minutes(THROTTLE_WINDOW_MINUTES);
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('login ' || $1, 0))")
        .bind(ip)
        .execute(&mut *tx)
        .await?;
    let (by_account, by_ip): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE email = $1), count(*)
         FROM login_attempts WHERE NOT succeeded AND at > $3 AND ip = $2",
    )
    .bind(&email)
    .bind(ip)
    .bind(since)
    .fetch_one(&mut *tx)
    .await?;
    if by_account >= MAX_FAILURES_PER_EMAIL || by_ip >= MAX_FAILURES_PER_IP {
        return Err(StoreError::RateLimited);
    }
    let attempt = sqlx::query_scalar(
        "INSERT INTO login_attempts (email, ip, succeeded) VALUES ($1, $2, false) RETURNING id",
    )
    .bind(&email)
    .bind(ip)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(attempt)
}

/// The attempt's password was right: it no longer counts as a failure.
pub async fn login_succeeded(pool: &PgPool, attempt: i64) -> Result<()> {
    sqlx::query("UPDATE login_attempts SET succeeded = true WHERE id = $1")
        .bind(attempt)
        .execute(pool)
        .await?;
    Ok(())
}
