//! Accounts, access keys, bucket sharing and login sessions: the reads, and
//! the writes the group-commit writer applies for the account mutations
//! (the configured users of `EnsureUser` included).

use crate::model::{AccountRecord, GrantLevel, KeyRecord, Secret, UserRecord};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::objects::require_bucket;
use super::{MetaError, MetaResult, MetaStore, MutationOutcome};

/// What a signature check and an access decision need about a key.
#[derive(Debug, Clone)]
pub struct KeyGrant {
    pub key: KeyRecord,
    pub secret: Secret,
    pub user: AccountRecord,
}

fn account_from_row(row: &AnyRow) -> MetaResult<AccountRecord> {
    Ok(AccountRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: super::parse_word(row, "role")?,
        created_ms: row.try_get("created_ms")?,
        disabled_ms: row.try_get("disabled_ms")?,
        password_hash: row
            .try_get::<Option<String>, _>("password_hash")?
            .map(Secret::new),
    })
}

fn key_from_row(row: &AnyRow) -> MetaResult<KeyRecord> {
    let buckets: Option<String> = row.try_get("buckets")?;
    Ok(KeyRecord {
        access_key: row.try_get("access_key")?,
        user_id: row.try_get("user_id")?,
        created_ms: row.try_get("key_created_ms")?,
        read_only: row.try_get::<i64, _>("read_only")? != 0,
        for_share_links: row.try_get::<i64, _>("for_share_links")? != 0,
        buckets: buckets
            .map(|b| {
                serde_json::from_str(&b)
                    .map_err(|e| MetaError::Corrupt(format!("key buckets: {e}")))
            })
            .transpose()?,
    })
}

const ACCOUNT_COLUMNS: &str = "u.id, u.name, u.role, u.created_ms, u.disabled_ms, u.password_hash";

// Booleans are read as integers: SQLite has no boolean type for `Any` to decode.
const KEY_COLUMNS: &str = "k.access_key, k.user_id, k.created_ms AS key_created_ms, \
     CASE WHEN k.read_only THEN 1 ELSE 0 END AS read_only, k.buckets, \
     CASE WHEN k.for_share_links THEN 1 ELSE 0 END AS for_share_links";

impl MetaStore {
    pub async fn key_grant(&self, access_key: &str) -> MetaResult<Option<KeyGrant>> {
        let sql = format!(
            "SELECT {KEY_COLUMNS}, k.secret, {ACCOUNT_COLUMNS} \
             FROM access_keys k JOIN users u ON u.id = k.user_id WHERE k.access_key = $1"
        );
        let row = sqlx::query(&sql)
            .bind(access_key)
            .fetch_optional(&mut *self.conn().await?)
            .await?;
        row.map(|row| -> MetaResult<_> {
            Ok(KeyGrant {
                key: key_from_row(&row)?,
                secret: Secret::new(row.try_get::<String, _>("secret")?),
                user: account_from_row(&row)?,
            })
        })
        .transpose()
    }

    pub async fn account_by_name(&self, name: &str) -> MetaResult<Option<AccountRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM users u WHERE u.name = $1"
        ))
        .bind(name)
        .fetch_optional(&mut *self.conn().await?)
        .await?;
        row.as_ref().map(account_from_row).transpose()
    }

    pub async fn accounts(&self) -> MetaResult<Vec<AccountRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM users u ORDER BY u.name"
        ))
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter().map(account_from_row).collect()
    }

    pub async fn keys_of(&self, user_id: &str) -> MetaResult<Vec<KeyRecord>> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM access_keys k WHERE k.user_id = $1 ORDER BY k.created_ms"
        );
        let rows = sqlx::query(&sql)
            .bind(user_id)
            .fetch_all(&mut *self.conn().await?)
            .await?;
        rows.iter().map(key_from_row).collect()
    }

    pub async fn grant(&self, bucket: &str, user_id: &str) -> MetaResult<Option<GrantLevel>> {
        let row = sqlx::query("SELECT level FROM bucket_grants WHERE bucket = $1 AND user_id = $2")
            .bind(bucket)
            .bind(user_id)
            .fetch_optional(&mut *self.conn().await?)
            .await?;
        Ok(row
            .map(|r| r.try_get::<String, _>("level"))
            .transpose()?
            .and_then(|l| GrantLevel::parse(&l)))
    }

    /// The users a bucket is shared with (by name), with the level.
    pub async fn grants_on(&self, bucket: &str) -> MetaResult<Vec<(String, GrantLevel)>> {
        self.grant_pairs(
            "SELECT u.name AS other, g.level FROM bucket_grants g JOIN users u ON u.id = g.user_id \
             WHERE g.bucket = $1 ORDER BY u.name",
            bucket,
        )
        .await
    }

    /// Buckets shared with a user, with the level.
    pub async fn grants_of(&self, user_id: &str) -> MetaResult<Vec<(String, GrantLevel)>> {
        self.grant_pairs(
            "SELECT bucket AS other, level FROM bucket_grants WHERE user_id = $1 ORDER BY bucket",
            user_id,
        )
        .await
    }

    /// Rows of `(other, level)` from one of the grant queries above.
    async fn grant_pairs(&self, sql: &str, bound: &str) -> MetaResult<Vec<(String, GrantLevel)>> {
        let rows = sqlx::query(sql)
            .bind(bound)
            .fetch_all(&mut *self.conn().await?)
            .await?;
        let mut out = Vec::new();
        for row in rows {
            let level: String = row.try_get("level")?;
            if let Some(level) = GrantLevel::parse(&level) {
                out.push((row.try_get("other")?, level));
            }
        }
        Ok(out)
    }
}

// ---- writes (called by the writer inside its transaction) ----------------

/// Creates or refreshes a configured user and its one access key.
pub(super) async fn ensure_user(
    conn: &mut AnyConnection,
    user: &UserRecord,
    access_key: &str,
    secret: &str,
    password_hash: &str,
    now_ms: i64,
) -> MetaResult<MutationOutcome> {
    // Nodes starting together all ensure the same user. An upsert on the
    // id alone can still fail on the unique name when two inserts meet, so
    // any conflict is let pass here and the row is then brought up to date.
    sqlx::query(
        "INSERT INTO users (id, name, role, created_ms, password_hash) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&user.id)
    .bind(&user.name)
    .bind(user.role.as_str())
    .bind(now_ms)
    .bind(password_hash)
    .execute(&mut *conn)
    .await?;
    let updated = sqlx::query(
        "UPDATE users SET name = $2, role = $3, password_hash = $4, disabled_ms = NULL WHERE id = $1",
    )
    .bind(&user.id)
    .bind(&user.name)
    .bind(user.role.as_str())
    .bind(password_hash)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 0 {
        // Not inserted and not there: another user holds the name.
        return Err(MetaError::UserExists);
    }
    let id = user.id.clone();
    // The user's previous keys (an old name or password) stop working.
    sqlx::query("DELETE FROM access_keys WHERE user_id = $1 AND access_key <> $2")
        .bind(&id)
        .bind(access_key)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO access_keys (access_key, secret, user_id, created_ms) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (access_key) DO UPDATE SET secret = excluded.secret, user_id = excluded.user_id",
    )
    .bind(access_key)
    .bind(secret)
    .bind(&id)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(MutationOutcome::Done)
}

pub(super) async fn create_user(
    conn: &mut AnyConnection,
    account: &AccountRecord,
) -> MetaResult<MutationOutcome> {
    // The unique name decides between two nodes creating the same user.
    let created = sqlx::query(
        "INSERT INTO users (id, name, role, created_ms, password_hash) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(&account.id)
    .bind(&account.name)
    .bind(account.role.as_str())
    .bind(account.created_ms)
    .bind(account.password_hash.as_ref().map(Secret::expose))
    .execute(&mut *conn)
    .await?;
    if created.rows_affected() == 0 {
        return Err(MetaError::UserExists);
    }
    Ok(MutationOutcome::Done)
}

async fn require_user(conn: &mut AnyConnection, user_id: &str) -> MetaResult<()> {
    let found = sqlx::query("SELECT 1 AS x FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await?;
    found.map(|_| ()).ok_or(MetaError::NoSuchUser)
}

pub(super) async fn set_disabled(
    conn: &mut AnyConnection,
    user_id: &str,
    disabled_ms: Option<i64>,
) -> MetaResult<MutationOutcome> {
    require_user(conn, user_id).await?;
    sqlx::query("UPDATE users SET disabled_ms = $1 WHERE id = $2")
        .bind(disabled_ms)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(MutationOutcome::Done)
}

pub(super) async fn set_password(
    conn: &mut AnyConnection,
    user_id: &str,
    password_hash: &str,
) -> MetaResult<MutationOutcome> {
    require_user(conn, user_id).await?;
    sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
        .bind(password_hash)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(MutationOutcome::Done)
}

/// Deletes a user who owns no bucket (their keys and grants go with them).
pub(super) async fn delete_user(
    conn: &mut AnyConnection,
    user_id: &str,
) -> MetaResult<MutationOutcome> {
    require_user(conn, user_id).await?;
    let owns = sqlx::query("SELECT 1 AS x FROM buckets WHERE owner_id = $1 LIMIT 1")
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await?;
    if owns.is_some() {
        return Err(MetaError::UserOwnsBuckets);
    }
    for sql in [
        "DELETE FROM access_keys WHERE user_id = $1",
        "DELETE FROM bucket_grants WHERE user_id = $1",
        "DELETE FROM users WHERE id = $1",
    ] {
        sqlx::query(sql).bind(user_id).execute(&mut *conn).await?;
    }
    Ok(MutationOutcome::Done)
}

pub(super) async fn create_key(
    conn: &mut AnyConnection,
    key: &KeyRecord,
    secret: &str,
) -> MetaResult<MutationOutcome> {
    require_user(conn, &key.user_id).await?;
    let buckets = key
        .buckets
        .as_ref()
        .map(|b| serde_json::to_string(b).map_err(|e| MetaError::Corrupt(e.to_string())))
        .transpose()?;
    sqlx::query(
        "INSERT INTO access_keys (access_key, secret, user_id, created_ms, read_only, buckets, \
         for_share_links) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&key.access_key)
    .bind(secret)
    .bind(&key.user_id)
    .bind(key.created_ms)
    .bind(key.read_only)
    .bind(buckets)
    .bind(key.for_share_links)
    .execute(&mut *conn)
    .await?;
    Ok(MutationOutcome::Done)
}

pub(super) async fn delete_key(
    conn: &mut AnyConnection,
    access_key: &str,
    user_id: &str,
) -> MetaResult<MutationOutcome> {
    super::touched(
        sqlx::query("DELETE FROM access_keys WHERE access_key = $1 AND user_id = $2")
            .bind(access_key)
            .bind(user_id)
            .execute(&mut *conn)
            .await?,
        MetaError::NoSuchKey,
    )
}

pub(super) async fn set_public_read(
    conn: &mut AnyConnection,
    bucket: &str,
    public_read: bool,
) -> MetaResult<MutationOutcome> {
    super::touched(
        sqlx::query("UPDATE buckets SET public_read = $1 WHERE name = $2")
            .bind(public_read)
            .bind(bucket)
            .execute(&mut *conn)
            .await?,
        MetaError::NoSuchBucket,
    )
}

pub(super) async fn set_grant(
    conn: &mut AnyConnection,
    bucket: &str,
    user_id: &str,
    level: Option<GrantLevel>,
) -> MetaResult<MutationOutcome> {
    require_bucket(conn, bucket).await?;
    require_user(conn, user_id).await?;
    match level {
        Some(level) => {
            sqlx::query(
                "INSERT INTO bucket_grants (bucket, user_id, level) VALUES ($1, $2, $3) \
                 ON CONFLICT (bucket, user_id) DO UPDATE SET level = excluded.level",
            )
            .bind(bucket)
            .bind(user_id)
            .bind(level.as_str())
            .execute(&mut *conn)
            .await?;
        }
        None => {
            sqlx::query("DELETE FROM bucket_grants WHERE bucket = $1 AND user_id = $2")
                .bind(bucket)
                .bind(user_id)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(MutationOutcome::Done)
}

// ---- sessions --------------------------------------------------------------

impl MetaStore {
    /// The account behind a live (unexpired, unrevoked) session.
    pub async fn session_account(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> MetaResult<Option<AccountRecord>> {
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.revoked_ms IS NULL AND s.expires_ms > $2"
        );
        let row = sqlx::query(&sql)
            .bind(token_hash)
            .bind(now_ms)
            .fetch_optional(&mut *self.conn().await?)
            .await?;
        row.as_ref().map(account_from_row).transpose()
    }
}

pub(super) async fn create_session(
    conn: &mut AnyConnection,
    token_hash: &str,
    user_id: &str,
    created_ms: i64,
    expires_ms: i64,
) -> MetaResult<MutationOutcome> {
    require_user(conn, user_id).await?;
    sqlx::query("INSERT INTO sessions (token_hash, user_id, created_ms, expires_ms) VALUES ($1, $2, $3, $4)")
        .bind(token_hash)
        .bind(user_id)
        .bind(created_ms)
        .bind(expires_ms)
        .execute(&mut *conn)
        .await?;
    Ok(MutationOutcome::Done)
}

/// Revokes one session, or every session of a user but `keep`.
pub(super) async fn revoke_sessions(
    conn: &mut AnyConnection,
    user_id: &str,
    only: Option<&str>,
    keep: Option<&str>,
    now_ms: i64,
) -> MetaResult<MutationOutcome> {
    sqlx::query(
        "UPDATE sessions SET revoked_ms = $1 WHERE user_id = $2 AND revoked_ms IS NULL \
         AND ($3 = '' OR token_hash = $3) AND token_hash <> $4",
    )
    .bind(now_ms)
    .bind(user_id)
    .bind(only.unwrap_or(""))
    .bind(keep.unwrap_or(""))
    .execute(&mut *conn)
    .await?;
    Ok(MutationOutcome::Done)
}
