//! Accounts and access: users with argon2id passwords, S3 access keys
//! (optionally read-only or limited to some buckets), bucket ownership,
//! public-read buckets and grants, and the one decision every front-end
//! asks: may this principal do this to that bucket?

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use base64::Engine;

use super::recent_lookups::RecentLookups;
use super::{CoreError, CoreResult, Principal, Store, now_ms};
use crate::core::meta::Mutation;
use crate::model::{AccountRecord, BucketRecord, GrantLevel, KeyRecord, Role, Secret};

/// The id of the admin created from `CISTERN_ROOT_USER`.
pub const ROOT_USER_ID: &str = "root";

/// How long a looked-up key is trusted without asking the database again.
/// On a single node (SQLite) every change is made here and clears the
/// cache at once; nodes sharing a database also check the accounts version
/// each request. This is a last bound, should either ever be missed.
const CREDENTIALS_TTL: Duration = Duration::from_secs(5);

/// Recently used credentials, so that signed requests do not each cost a
/// lookup of the key, its user and their state.
pub(super) struct CredentialsCache {
    keys: RecentLookups<String, (Principal, String)>,
    /// The accounts version of a shared database that this node has
    /// caught up with (forgotten everything remembered before it).
    caught_up: AtomicI64,
}

impl Default for CredentialsCache {
    fn default() -> Self {
        Self {
            keys: RecentLookups::new(CREDENTIALS_TTL, 10_000),
            caught_up: AtomicI64::new(0),
        }
    }
}

/// What a caller may do to one bucket, and the bucket.
#[derive(Debug, Clone)]
pub struct BucketRights {
    pub record: BucketRecord,
    pub read: bool,
    pub write: bool,
    pub manage: bool,
}

impl BucketRights {
    pub fn allows(&self, access: Access) -> bool {
        match access {
            Access::Read => self.read,
            Access::Write => self.write,
            Access::Manage => self.manage,
        }
    }
}

/// What a request wants to do to a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read objects and listings.
    Read,
    /// Create, change or delete objects.
    Write,
    /// Change the bucket itself (delete it, share it, make it public).
    Manage,
}

pub fn validate_user_name(name: &str) -> CoreResult<()> {
    let ok = (3..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(CoreError::InvalidArgument(
            "name: 3 to 64 characters of a-z, 0-9, '.', '_' or '-'".into(),
        ))
    }
}

pub fn validate_password(password: &str) -> CoreResult<()> {
    if password.len() < 8 || password.len() > 1024 {
        return Err(CoreError::InvalidArgument(
            "password: 8 to 1024 bytes".into(),
        ));
    }
    Ok(())
}

pub(super) fn principal_of(account: &AccountRecord, key: Option<&KeyRecord>) -> Principal {
    Principal {
        user_id: account.id.clone(),
        name: account.name.clone(),
        role: account.role,
        access_key: key.map(|k| k.access_key.clone()).unwrap_or_default(),
        read_only: key.is_some_and(|k| k.read_only),
        key_buckets: key.and_then(|k| k.buckets.clone()),
        session: None,
    }
}

impl Store {
    /// The principal and secret behind an access key; `None` for an unknown
    /// key or a disabled user.
    pub async fn credentials(&self, access_key: &str) -> CoreResult<Option<(Principal, String)>> {
        self.catch_up_with_accounts().await?;
        self.look_up_credentials(access_key).await
    }

    /// As [`Store::credentials`], for a request that has already looked
    /// this key up (its signature was checked with it): the accounts
    /// version was read then, after the request arrived, which is all that
    /// exactness needs, so it is not read twice.
    pub async fn credentials_again(
        &self,
        access_key: &str,
    ) -> CoreResult<Option<(Principal, String)>> {
        self.look_up_credentials(access_key).await
    }

    async fn look_up_credentials(
        &self,
        access_key: &str,
    ) -> CoreResult<Option<(Principal, String)>> {
        let keys = &self.credentials_cache.keys;
        if let Some(hit) = keys.get(&access_key.to_owned()) {
            return Ok(Some(hit));
        }
        let generation = keys.generation();
        let Some(grant) = self.meta.key_grant(access_key).await? else {
            return Ok(None);
        };
        if grant.user.disabled_ms.is_some() {
            return Ok(None);
        }
        let principal = principal_of(&grant.user, Some(&grant.key));
        let found = (principal, grant.secret.expose().to_owned());
        keys.store(access_key.to_owned(), found.clone(), generation);
        Ok(Some(found))
    }

    /// Before remembered credentials are trusted: where nodes share the
    /// database, one read of the accounts version, and if another node
    /// changed accounts since, everything remembered is forgotten. The
    /// change committed (and bumped the version) before that node
    /// answered, so whatever it answered holds here from the next request.
    pub(super) async fn catch_up_with_accounts(&self) -> CoreResult<()> {
        let Some(version) = self.meta.accounts_version().await? else {
            return Ok(());
        };
        let cache = &self.credentials_cache;
        // Any difference, not only a newer version: a database restored
        // from a backup or failed over to a replica may count lower.
        if version != cache.caught_up.load(Ordering::SeqCst) {
            // Forgotten before the version is published: a request that
            // sees the version caught up finds nothing older.
            self.forget_credentials();
            cache.caught_up.store(version, Ordering::SeqCst);
        }
        Ok(())
    }

    fn forget_credentials(&self) {
        self.credentials_cache.keys.forget_all();
        self.passwords.forget_all();
    }

    /// Applies an account mutation and drops cached credentials, so the
    /// change holds from the next request on this node.
    async fn change_accounts(&self, mutation: Mutation) -> CoreResult<()> {
        let result = self.meta.apply(mutation).await;
        self.forget_credentials();
        result?;
        Ok(())
    }

    /// Follows what other nodes sharing the database announce: pool events
    /// written there wake this node's event hub and webhook deliverer.
    pub fn follow_other_nodes(&self) {
        let pool_events = self.pool_events.clone();
        self.meta
            .follow_event_notices(move || pool_events.notify_waiters());
    }

    /// Creates or updates the root admin, whose name and password are also
    /// an S3 access key and secret.
    pub async fn ensure_admin(&self, name: &str, password: &str) -> CoreResult<()> {
        let current = self.meta.accounts().await?;
        if let Some(root) = current.iter().find(|a| a.id == ROOT_USER_ID)
            && root.name != name
        {
            tracing::warn!(
                from = %root.name,
                to = %name,
                "the root user name changed in the settings: renaming the root user"
            );
        }
        let password_hash = self.passwords.hash(password).await?;
        self.change_accounts(Mutation::EnsureUser {
            user: crate::core::meta::UserRecord {
                // One fixed identity: renaming the root user moves it
                // instead of leaving the old name an admin.
                id: ROOT_USER_ID.to_owned(),
                name: name.to_owned(),
                role: Role::Admin,
            },
            access_key: name.to_owned(),
            secret: Secret::new(password),
            password_hash: Secret::new(password_hash),
            now_ms: now_ms(),
        })
        .await
    }

    pub async fn user_count(&self) -> CoreResult<i64> {
        Ok(self.meta.count_users().await?)
    }

    /// Checks a name and password (HTTP Basic, login). Unknown names cost
    /// the same work as wrong passwords.
    pub async fn login(&self, name: &str, password: &str) -> CoreResult<Principal> {
        let account = self.meta.account_by_name(name).await?;
        let hash = account
            .as_ref()
            .and_then(|a| a.password_hash.as_ref().map(Secret::expose));
        let ok = self.passwords.matches(password, hash).await?;
        match account {
            Some(a) if ok && a.disabled_ms.is_none() => Ok(principal_of(&a, None)),
            Some(a) if ok => Err(CoreError::AccountDisabled(a.name)),
            _ => Err(CoreError::BadLogin),
        }
    }

    pub async fn create_user(
        &self,
        name: &str,
        password: &str,
        role: &str,
    ) -> CoreResult<AccountRecord> {
        validate_user_name(name)?;
        validate_password(password)?;
        let role: Role = role
            .parse()
            .map_err(|_| CoreError::InvalidArgument("role: 'admin' or 'user'".into()))?;
        let account = AccountRecord {
            id: uuid::Uuid::new_v4().simple().to_string(),
            name: name.to_owned(),
            role,
            created_ms: now_ms(),
            disabled_ms: None,
            password_hash: Some(Secret::new(self.passwords.hash(password).await?)),
        };
        self.change_accounts(Mutation::CreateUser {
            account: account.clone(),
        })
        .await?;
        Ok(account)
    }

    pub async fn account(&self, name: &str) -> CoreResult<AccountRecord> {
        self.meta
            .account_by_name(name)
            .await?
            .ok_or(CoreError::NoSuchUser)
    }

    pub async fn accounts(&self) -> CoreResult<Vec<AccountRecord>> {
        Ok(self.meta.accounts().await?)
    }

    pub async fn set_disabled(&self, name: &str, disabled: bool) -> CoreResult<()> {
        let account = self.account(name).await?;
        if account.id == ROOT_USER_ID && disabled {
            return Err(CoreError::InvalidRequest(
                "the root user cannot be disabled".into(),
            ));
        }
        self.change_accounts(Mutation::SetUserDisabled {
            user_id: account.id,
            disabled_ms: disabled.then(now_ms),
        })
        .await
    }

    pub async fn set_password(&self, name: &str, password: &str) -> CoreResult<()> {
        validate_password(password)?;
        let account = self.account(name).await?;
        let password_hash = self.passwords.hash(password).await?;
        self.change_accounts(Mutation::SetPassword {
            user_id: account.id,
            password_hash: Secret::new(password_hash),
        })
        .await
    }

    /// Deletes a user; with `purge`, their buckets and everything in them
    /// first (without it, a user who owns buckets is refused). The root
    /// user stays.
    pub async fn remove_user(&self, name: &str, purge: bool) -> CoreResult<()> {
        if purge {
            let account = self.account(name).await?;
            if account.id == ROOT_USER_ID {
                return Err(CoreError::InvalidRequest(
                    "the root user cannot be deleted".into(),
                ));
            }
            self.purge_buckets_of(&account.id).await?;
        }
        self.delete_user(name).await
    }

    pub async fn delete_user(&self, name: &str) -> CoreResult<()> {
        let account = self.account(name).await?;
        if account.id == ROOT_USER_ID {
            return Err(CoreError::InvalidRequest(
                "the root user cannot be deleted".into(),
            ));
        }
        self.change_accounts(Mutation::DeleteUser {
            user_id: account.id,
        })
        .await
    }

    /// A new access key for a user; the secret is returned once, here.
    pub async fn create_key(
        &self,
        user_id: &str,
        read_only: bool,
        buckets: Option<Vec<String>>,
    ) -> CoreResult<(KeyRecord, String)> {
        self.new_key(user_id, read_only, buckets, false).await
    }

    async fn new_key(
        &self,
        user_id: &str,
        read_only: bool,
        buckets: Option<Vec<String>>,
        for_share_links: bool,
    ) -> CoreResult<(KeyRecord, String)> {
        let key = KeyRecord {
            access_key: format!("CK{}", hex::encode_upper(rand::random::<[u8; 9]>())),
            user_id: user_id.to_owned(),
            created_ms: now_ms(),
            read_only,
            buckets,
            for_share_links,
        };
        let secret =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 30]>());
        self.change_accounts(Mutation::CreateKey {
            key: key.clone(),
            secret: Secret::new(secret.clone()),
        })
        .await?;
        Ok((key, secret))
    }

    pub async fn keys_of(&self, user_id: &str) -> CoreResult<Vec<KeyRecord>> {
        Ok(self.meta.keys_of(user_id).await?)
    }

    pub async fn revoke_key(&self, user_id: &str, access_key: &str) -> CoreResult<()> {
        self.change_accounts(Mutation::DeleteKey {
            access_key: access_key.to_owned(),
            user_id: user_id.to_owned(),
        })
        .await
        .map_err(|e| match e {
            CoreError::NoSuchKey => CoreError::NoSuchAccessKey,
            other => other,
        })
    }

    /// May `who` (`None`: anonymous) do `access` to `bucket`? Refusals and
    /// buckets the caller may not see are both `AccessDenied`, except that a
    /// bucket nobody has is `NoSuchBucket`.
    pub async fn authorize(
        &self,
        who: Option<&Principal>,
        bucket: &str,
        access: Access,
    ) -> CoreResult<BucketRecord> {
        let rights = self.bucket_rights(who, bucket).await?;
        if rights.allows(access) {
            Ok(rights.record)
        } else {
            Err(CoreError::AccessDenied)
        }
    }

    /// Everything `who` may do to `bucket`, from one read of the bucket and
    /// at most one of a grant (a page that shows read, write and manage
    /// controls asks once, not three times).
    pub async fn bucket_rights(
        &self,
        who: Option<&Principal>,
        bucket: &str,
    ) -> CoreResult<BucketRights> {
        let record = self.bucket(bucket).await?;
        let granted = |read, write, manage| (read, write, manage);
        let (read, write, manage) = match who {
            None => granted(record.public_read, false, false),
            Some(who)
                if who
                    .key_buckets
                    .as_ref()
                    .is_some_and(|b| !b.iter().any(|n| n == bucket)) =>
            {
                granted(false, false, false)
            }
            Some(who) => {
                let (read, write, manage) = if who.is_admin() || record.owner_id == who.user_id {
                    granted(true, true, true)
                } else {
                    match self.meta.grant(bucket, &who.user_id).await? {
                        Some(GrantLevel::ReadWrite) => granted(true, true, false),
                        Some(GrantLevel::Read) => granted(true, false, false),
                        None => granted(record.public_read, false, false),
                    }
                };
                // A read-only key reads, whatever its owner may do.
                (read, write && !who.read_only, manage && !who.read_only)
            }
        };
        Ok(BucketRights {
            record,
            read,
            write,
            manage,
        })
    }

    /// A bucket as `who` may see it, with the users it is shared with when
    /// `who` may manage it (`None` otherwise).
    pub async fn bucket_details(
        &self,
        who: Option<&Principal>,
        bucket: &str,
    ) -> CoreResult<(BucketRecord, Option<Vec<(String, GrantLevel)>>)> {
        let rights = self.bucket_rights(who, bucket).await?;
        if !rights.read {
            return Err(CoreError::AccessDenied);
        }
        let grants = match rights.manage {
            true => Some(self.meta.grants_on(bucket).await?),
            false => None,
        };
        Ok((rights.record, grants))
    }

    pub async fn set_public_read(
        &self,
        who: &Principal,
        bucket: &str,
        public_read: bool,
    ) -> CoreResult<()> {
        self.authorize(Some(who), bucket, Access::Manage).await?;
        self.meta
            .apply(Mutation::SetPublicRead {
                bucket: bucket.to_owned(),
                public_read,
            })
            .await?;
        Ok(())
    }

    pub async fn set_grant(
        &self,
        who: &Principal,
        bucket: &str,
        user: &str,
        level: Option<GrantLevel>,
    ) -> CoreResult<()> {
        self.authorize(Some(who), bucket, Access::Manage).await?;
        let account = self.account(user).await?;
        self.meta
            .apply(Mutation::SetGrant {
                bucket: bucket.to_owned(),
                user_id: account.id,
                level,
            })
            .await?;
        Ok(())
    }

    /// Buckets a principal may see: admins all, others their own, those
    /// shared with them, and public ones they were given.
    pub async fn visible_buckets(&self, who: &Principal) -> CoreResult<Vec<BucketRecord>> {
        let all = self.meta.buckets().await?;
        if who.is_admin() {
            return Ok(all);
        }
        let granted: Vec<String> = self
            .meta
            .grants_of(&who.user_id)
            .await?
            .into_iter()
            .map(|(b, _)| b)
            .collect();
        Ok(all
            .into_iter()
            .filter(|b| b.owner_id == who.user_id || granted.contains(&b.name))
            .filter(|b| who.key_buckets.as_ref().is_none_or(|k| k.contains(&b.name)))
            .collect())
    }
}

impl Store {
    /// Sets or clears (`None`) a user's quota on bytes stored.
    pub async fn set_user_quota(&self, name: &str, bytes: Option<i64>) -> CoreResult<()> {
        let account = self.account(name).await?;
        self.meta
            .apply(Mutation::SetUserQuota {
                user_id: account.id,
                bytes,
            })
            .await?;
        Ok(())
    }

    /// Every user's quota on bytes stored, by user id (only users with one).
    pub async fn user_quotas(&self) -> CoreResult<std::collections::BTreeMap<String, i64>> {
        Ok(self.meta.user_quotas().await?)
    }

    /// Sets or clears (`None`) a bucket's quota on bytes stored.
    pub async fn set_bucket_quota(&self, bucket: &str, bytes: Option<i64>) -> CoreResult<()> {
        self.meta
            .apply(Mutation::SetBucketQuota {
                bucket: bucket.to_owned(),
                bytes,
            })
            .await?;
        Ok(())
    }
}

impl Store {
    /// The key that signs `who`'s share links for `bucket`, with its secret:
    /// read-only, limited to the bucket, marked as made for share links;
    /// made when there is none yet.
    pub async fn share_key(&self, who: &Principal, bucket: &str) -> CoreResult<(String, String)> {
        // Only keys made for share links sign them, so revoking such a key
        // ends its links and nothing else, and no link carries more than
        // read access to its bucket.
        for key in self.meta.keys_of(&who.user_id).await? {
            let this_bucket = key.buckets.as_deref() == Some(&[bucket.to_owned()][..]);
            if key.for_share_links
                && key.read_only
                && this_bucket
                && let Some(grant) = self.meta.key_grant(&key.access_key).await?
            {
                return Ok((key.access_key, grant.secret.expose().to_owned()));
            }
        }
        let (key, secret) = self
            .new_key(&who.user_id, true, Some(vec![bucket.to_owned()]), true)
            .await?;
        Ok((key.access_key, secret))
    }

    /// Deletes a user's buckets with everything in them (the `purge` of
    /// a user deletion).
    pub async fn purge_buckets_of(&self, user_id: &str) -> CoreResult<()> {
        for bucket in self
            .meta
            .buckets()
            .await?
            .into_iter()
            .filter(|b| b.owner_id == user_id)
        {
            loop {
                let page = self.list_objects(&bucket.name, "", None, "", 1000).await?;
                for object in &page.objects {
                    self.delete_object(&bucket.name, &object.key).await?;
                }
                if !page.truncated {
                    break;
                }
            }
            loop {
                let (uploads, truncated) =
                    self.list_uploads(&bucket.name, "", "", "", 1000).await?;
                for upload in &uploads {
                    self.abort_upload(&bucket.name, &upload.key, &upload.upload_id)
                        .await?;
                }
                if !truncated {
                    break;
                }
            }
            self.delete_bucket(&bucket.name).await?;
        }
        Ok(())
    }
}
