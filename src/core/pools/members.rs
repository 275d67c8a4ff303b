//! Pool members: adding them (each with a token shown once), disabling,
//! enabling, re-keying and removing them, and finding the member behind a
//! token. A change to a member writes a `member.*` event, which ends the
//! member's open event streams where it takes its rights away.

use base64::Engine;

use super::{check_name, invalid};
use crate::core::meta::pools::{MemberChange, NewMember, PoolMutation};
use crate::core::sessions::token_hash;
use crate::core::{CoreError, CoreResult, Store, now_ms};
use crate::model::{MemberRecord, MemberRole, PoolRecord, Secret};

/// Prefix of member tokens, so a bearer token says what it is.
pub const MEMBER_TOKEN_PREFIX: &str = "cpm_";

fn new_member_token() -> String {
    format!(
        "{MEMBER_TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>())
    )
}

impl Store {
    /// Adds members; answers each with its token, shown only this once.
    pub async fn add_members(
        &self,
        pool: &PoolRecord,
        wanted: Vec<(String, String)>,
    ) -> CoreResult<Vec<(MemberRecord, String)>> {
        if wanted.is_empty() || wanted.len() > 10_000 {
            return Err(invalid("count", "1 to 10000 members at a time"));
        }
        let now = now_ms();
        let mut created = Vec::with_capacity(wanted.len());
        let mut rows = Vec::with_capacity(wanted.len());
        for (name, role) in wanted {
            check_name("name", &name)?;
            let role: MemberRole = role
                .parse()
                .map_err(|_| invalid("role", "contributor, listener or processor"))?;
            let token = new_member_token();
            let member = MemberRecord {
                id: uuid::Uuid::now_v7().simple().to_string(),
                pool_id: pool.id.clone(),
                name,
                role,
                created_ms: now,
                disabled_ms: None,
            };
            rows.push(NewMember {
                member: member.clone(),
                token_hash: Secret::new(token_hash(&token)),
            });
            created.push((member, token));
        }
        self.apply_pool(PoolMutation::AddMembers {
            pool_id: pool.id.clone(),
            members: rows,
        })
        .await?;
        Ok(created)
    }

    pub async fn set_member_disabled(
        &self,
        pool: &PoolRecord,
        name: &str,
        disabled: bool,
    ) -> CoreResult<()> {
        let change = if disabled {
            MemberChange::Disable
        } else {
            MemberChange::Enable
        };
        self.change_member(pool, name, change).await
    }

    async fn change_member(
        &self,
        pool: &PoolRecord,
        name: &str,
        change: MemberChange,
    ) -> CoreResult<()> {
        self.apply_pool(PoolMutation::ChangeMember {
            pool_id: pool.id.clone(),
            name: name.to_owned(),
            change,
            now_ms: now_ms(),
        })
        .await?;
        self.pool_events.notify_waiters();
        Ok(())
    }

    /// Gives a member a new token; the old one stops working at once.
    pub async fn rekey_member(&self, pool: &PoolRecord, name: &str) -> CoreResult<String> {
        let token = new_member_token();
        self.change_member(
            pool,
            name,
            MemberChange::Rekey(Secret::new(token_hash(&token))),
        )
        .await?;
        Ok(token)
    }

    pub async fn remove_member(&self, pool: &PoolRecord, name: &str) -> CoreResult<()> {
        self.change_member(pool, name, MemberChange::Remove).await
    }

    /// The member behind a token, refused when unknown or disabled.
    pub async fn pool_member(&self, token: &str) -> CoreResult<(MemberRecord, PoolRecord)> {
        let (member, pool) = self
            .meta
            .member_by_token(&token_hash(token))
            .await?
            .ok_or(CoreError::BadSession)?;
        if member.disabled_ms.is_some() {
            return Err(CoreError::AccountDisabled(member.name));
        }
        Ok((member, pool))
    }
}
