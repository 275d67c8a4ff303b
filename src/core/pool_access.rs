//! Who may do what to a pool, in one place. A pool call names its actor (a
//! signed-in user, or a member by its token) and what it wants
//! ([`PoolIntent`]); [`Store::pool_access`] answers with the pool and the
//! member, or refuses. The reads a pool route makes once admitted live here
//! too, with the rules that shape them: admins list every pool, members
//! list only their own contributions, processors are not counted among the
//! receivers of a result, and a member's event feed ends when it is
//! disabled, removed or re-keyed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::{Stream, StreamExt};

use super::events::EventFilter;
use super::sessions::token_hash;
use super::{CoreError, CoreResult, Principal, Store};
use crate::model::{
    ContributionFilter, ContributionRecord, GroupRecord, GroupState, MemberRecord, MemberRole,
    PoolError, PoolEvent, PoolEventKind, PoolRecord, WebhookAttempt,
};

/// Who is calling on a pool.
pub enum PoolActor {
    /// A signed-in user: the pool's owner, an admin, or a stranger.
    User(Principal),
    /// A member, by the token it presented.
    Member(Box<MemberSession>),
}

impl PoolActor {
    /// The pool a member belongs to; `None` for a user.
    pub fn member_pool_name(&self) -> Option<&str> {
        match self {
            Self::Member(session) => Some(&session.pool.name),
            Self::User(_) => None,
        }
    }
}

/// A member signed in with its token.
pub struct MemberSession {
    pub member: MemberRecord,
    pub pool: PoolRecord,
    /// Kept so that its event feed notices a re-key.
    token_hash: String,
}

/// What an actor wants to do to a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolIntent {
    /// See the pool, its groups, events and results: its owner, an admin,
    /// any of its members.
    View,
    /// Change members, reopen groups, read deliveries and webhook
    /// attempts: the owner or an admin, never a member.
    Manage,
    /// Send files: contributors.
    Contribute,
    /// Seal a group before its time: the owner, an admin or a processor.
    Seal,
    /// Claim groups, renew leases, publish or fail: processors.
    Process,
    /// Read a group's files (manifest, one file, archive): the owner, an
    /// admin or a processor.
    ReadFiles,
}

/// An admitted pool call: the pool, and the member when the caller is one.
pub struct PoolAccess {
    pub pool: PoolRecord,
    pub member: Option<MemberRecord>,
    token_hash: Option<String>,
}

impl PoolAccess {
    /// The pool and the calling member, for the intents only members have
    /// ([`PoolIntent::Contribute`], [`PoolIntent::Process`]).
    pub fn into_member(self) -> CoreResult<(PoolRecord, MemberRecord)> {
        match self.member {
            Some(member) => Ok((self.pool, member)),
            None => Err(CoreError::AccessDenied),
        }
    }
}

/// Whether a caller (a member, or the owner or an admin when `None`) may
/// act with `intent` on a pool it can see.
fn permits(intent: PoolIntent, member: Option<&MemberRecord>) -> bool {
    match (intent, member) {
        (PoolIntent::View, _) => true,
        (PoolIntent::Manage, member) => member.is_none(),
        (PoolIntent::Contribute, Some(m)) => m.role == MemberRole::Contributor,
        (PoolIntent::Process, Some(m)) => m.role == MemberRole::Processor,
        (PoolIntent::Contribute | PoolIntent::Process, None) => false,
        (PoolIntent::Seal | PoolIntent::ReadFiles, member) => {
            member.is_none_or(|m| m.role == MemberRole::Processor)
        }
    }
}

/// A group's published result: the group, and the result's object key in
/// the pool's bucket.
pub struct PublishedResult {
    pub group: GroupRecord,
    pub key: String,
}

/// Who has fetched the newest published result.
pub struct DeliveryReport {
    pub group_start_ms: i64,
    /// Names of the contributors and listeners who fetched it, with when
    /// they last did (Unix ms).
    pub fetched: Vec<(String, i64)>,
    /// Names of those who have not.
    pub missing: Vec<String>,
}

/// What a member sees of itself in the console.
pub struct MemberOverview {
    /// Newest first.
    pub contributions: Vec<ContributionRecord>,
    /// The cursor of the next older page, when there is one.
    pub older: Option<String>,
    /// The newest refused files, newest first.
    pub refusals: Vec<PoolEvent>,
    /// The newest published group.
    pub latest: Option<GroupRecord>,
    pub fetched_latest: bool,
}

/// A page of a pool's members.
pub struct MemberListing {
    pub members: Vec<MemberActivity>,
    /// More follow after the last.
    pub more: bool,
}

/// A member with what it has sent.
pub struct MemberActivity {
    pub member: MemberRecord,
    pub files: i64,
    /// When its last file came (ms).
    pub last_ms: Option<i64>,
}

/// Whose contributions a caller may list, with the names of the pool's
/// members to label them.
pub struct ContributionScope {
    pool_id: String,
    member_id: Option<String>,
    names: HashMap<String, String>,
}

impl ContributionScope {
    fn name_of(&self, member_id: &str) -> String {
        self.names.get(member_id).cloned().unwrap_or_default()
    }
}

impl Store {
    /// The member behind a token, as a pool actor.
    pub async fn member_session(&self, token: &str) -> CoreResult<MemberSession> {
        let (member, pool) = self.pool_member(token).await?;
        Ok(MemberSession {
            member,
            pool,
            token_hash: token_hash(token),
        })
    }

    /// Whether `actor` may act with `intent` on the pool called `name`.
    /// A pool the actor cannot see is not found (a member sees only its
    /// own, a user only the ones they own, an admin all); one it sees but
    /// may not act on this way is denied.
    pub async fn pool_access(
        &self,
        actor: PoolActor,
        name: &str,
        intent: PoolIntent,
    ) -> CoreResult<PoolAccess> {
        let access = match actor {
            PoolActor::Member(session) => {
                let MemberSession {
                    member,
                    pool,
                    token_hash,
                } = *session;
                if pool.name != name {
                    return Err(CoreError::from(PoolError::NoSuchPool));
                }
                PoolAccess {
                    pool,
                    member: Some(member),
                    token_hash: Some(token_hash),
                }
            }
            PoolActor::User(who) => PoolAccess {
                pool: self.owned_pool(&who, name).await?,
                member: None,
                token_hash: None,
            },
        };
        if permits(intent, access.member.as_ref()) {
            Ok(access)
        } else {
            Err(CoreError::AccessDenied)
        }
    }

    /// The pools a user sees: their own; an admin every pool.
    pub async fn visible_pools(&self, who: &Principal) -> CoreResult<Vec<PoolRecord>> {
        let owner = (!who.is_admin()).then_some(who.user_id.as_str());
        Ok(self.meta.pools(owner).await?)
    }

    /// Member id → name.
    async fn member_names(&self, pool: &PoolRecord) -> CoreResult<HashMap<String, String>> {
        Ok(self
            .meta
            .members(&pool.id)
            .await?
            .into_iter()
            .map(|m| (m.id, m.name))
            .collect())
    }

    /// Every member, with how many files each has contributed.
    pub async fn members_with_counts(
        &self,
        pool: &PoolRecord,
    ) -> CoreResult<Vec<(MemberRecord, i64)>> {
        let counts: HashMap<String, i64> = self
            .meta
            .contribution_counts(&pool.id)
            .await?
            .into_iter()
            .collect();
        let members = self.meta.members(&pool.id).await?;
        Ok(members
            .into_iter()
            .map(|m| {
                let count = counts.get(&m.id).copied().unwrap_or(0);
                (m, count)
            })
            .collect())
    }

    /// How many members the pool has.
    pub async fn member_count(&self, pool: &PoolRecord) -> CoreResult<i64> {
        Ok(self.meta.member_count(&pool.id).await?)
    }

    /// A page of up to `limit` members by name, those whose names contain
    /// `contains` (ignoring case), after the name `after`, each with the
    /// files it sent and when the last came; its cost follows the page,
    /// not the pool.
    pub async fn member_listing(
        &self,
        pool: &PoolRecord,
        contains: &str,
        after: &str,
        limit: usize,
    ) -> CoreResult<MemberListing> {
        // Names hold only these, so a filter with anything else (a LIKE
        // wildcard among them) matches no name.
        let contains = contains.to_lowercase();
        if !contains
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Ok(MemberListing {
                members: Vec::new(),
                more: false,
            });
        }
        let mut members = self
            .meta
            .members_named(&pool.id, &contains, after, limit as i64 + 1)
            .await?;
        let more = members.len() > limit;
        members.truncate(limit);
        let ids: Vec<String> = members.iter().map(|m| m.id.clone()).collect();
        let activity: HashMap<String, (i64, i64)> = self
            .meta
            .member_activity(&pool.id, &ids)
            .await?
            .into_iter()
            .map(|(id, files, last)| (id, (files, last)))
            .collect();
        Ok(MemberListing {
            members: members
                .into_iter()
                .map(|member| {
                    let (files, last) = activity.get(&member.id).copied().unzip();
                    MemberActivity {
                        member,
                        files: files.unwrap_or(0),
                        last_ms: last,
                    }
                })
                .collect(),
            more,
        })
    }

    /// The newest published group and which of the members named (by
    /// id) fetched its result; `None` before the first.
    pub async fn latest_fetchers(
        &self,
        pool: &PoolRecord,
        member_ids: &[String],
    ) -> CoreResult<Option<(GroupRecord, HashSet<String>)>> {
        let Some(group) = self.meta.latest_published(&pool.id).await? else {
            return Ok(None);
        };
        let fetched = self
            .meta
            .deliveries_to(&pool.id, group.start_ms, member_ids)
            .await?
            .into_iter()
            .collect();
        Ok(Some((group, fetched)))
    }

    /// Whose contributions the caller may list: a member its own; the
    /// owner everyone's, or those of the member named.
    pub async fn contribution_scope(
        &self,
        access: &PoolAccess,
        member: Option<&str>,
    ) -> CoreResult<ContributionScope> {
        let members = self.meta.members(&access.pool.id).await?;
        let member_id = match (&access.member, member) {
            (Some(me), _) => Some(me.id.clone()),
            (None, Some(name)) => Some(
                members
                    .iter()
                    .find(|m| m.name == name)
                    .map(|m| m.id.clone())
                    .ok_or(CoreError::from(PoolError::NoSuchMember))?,
            ),
            (None, None) => None,
        };
        Ok(ContributionScope {
            pool_id: access.pool.id.clone(),
            member_id,
            names: members.into_iter().map(|m| (m.id, m.name)).collect(),
        })
    }

    /// Every member's contributions, as the pool's owner sees them.
    pub async fn owner_contribution_scope(
        &self,
        pool: &PoolRecord,
    ) -> CoreResult<ContributionScope> {
        Ok(ContributionScope {
            pool_id: pool.id.clone(),
            member_id: None,
            names: self.member_names(pool).await?,
        })
    }

    /// A page of the contributions in `scope` (of one group, if given),
    /// after the id `after_id`, each with its member's name.
    pub async fn contribution_page(
        &self,
        scope: &ContributionScope,
        group_start_ms: Option<i64>,
        after_id: Option<String>,
        limit: i64,
    ) -> CoreResult<Vec<(ContributionRecord, String)>> {
        let filter = ContributionFilter {
            member_id: scope.member_id.clone(),
            group_start_ms,
            after_id,
        };
        let page = self
            .meta
            .contributions(&scope.pool_id, &filter, limit)
            .await?;
        Ok(page
            .into_iter()
            .map(|c| {
                let name = scope.name_of(&c.member_id);
                (c, name)
            })
            .collect())
    }

    /// The pool's groups (in one state, if given), newest window first.
    pub async fn pool_groups(
        &self,
        pool: &PoolRecord,
        state: Option<&str>,
    ) -> CoreResult<Vec<GroupRecord>> {
        Ok(self.meta.groups(&pool.id, state).await?)
    }

    /// One group, by the start of its window.
    pub async fn pool_group(&self, pool: &PoolRecord, start_ms: i64) -> CoreResult<GroupRecord> {
        Ok(self.meta.group(&pool.id, start_ms).await?)
    }

    /// Every file of a group, each with its member's name.
    pub async fn group_manifest(
        &self,
        pool: &PoolRecord,
        start_ms: i64,
    ) -> CoreResult<Vec<(ContributionRecord, String)>> {
        let files = self.manifest(pool, start_ms).await?;
        let names = self.member_names(pool).await?;
        Ok(files
            .into_iter()
            .map(|c| {
                let name = names.get(&c.member_id).cloned().unwrap_or_default();
                (c, name)
            })
            .collect())
    }

    /// One file of a group, by its contribution id.
    pub async fn group_file(
        &self,
        pool: &PoolRecord,
        start_ms: i64,
        id: &str,
    ) -> CoreResult<ContributionRecord> {
        let found = self.meta.contribution(&pool.id, id).await?;
        if found.group_start_ms != start_ms {
            return Err(CoreError::from(PoolError::NoSuchContribution));
        }
        Ok(found)
    }

    /// The result of a group, or of the newest published group when
    /// `start_ms` is `None`; not found until it is published.
    pub async fn published_result(
        &self,
        pool: &PoolRecord,
        start_ms: Option<i64>,
    ) -> CoreResult<PublishedResult> {
        let group = match start_ms {
            Some(start_ms) => self.meta.group(&pool.id, start_ms).await?,
            None => self
                .meta
                .latest_published(&pool.id)
                .await?
                .ok_or(CoreError::from(PoolError::NoResultYet))?,
        };
        match &group.result_key {
            Some(key) if group.state == GroupState::Published => Ok(PublishedResult {
                key: key.clone(),
                group,
            }),
            _ => Err(CoreError::from(PoolError::NoResultYet)),
        }
    }

    /// Which contributors and listeners fetched the newest published
    /// result; `None` before the first one.
    pub async fn latest_deliveries(&self, pool: &PoolRecord) -> CoreResult<Option<DeliveryReport>> {
        match self.meta.latest_published(&pool.id).await? {
            Some(group) => Ok(Some(self.group_deliveries(pool, group.start_ms).await?)),
            None => Ok(None),
        }
    }

    /// Which contributors and listeners fetched a group's result, and
    /// when.
    pub async fn group_deliveries(
        &self,
        pool: &PoolRecord,
        group_start_ms: i64,
    ) -> CoreResult<DeliveryReport> {
        let fetched: HashMap<String, i64> = self
            .meta
            .deliveries(&pool.id, group_start_ms)
            .await?
            .into_iter()
            .collect();
        let mut report = DeliveryReport {
            group_start_ms,
            fetched: Vec::new(),
            missing: Vec::new(),
        };
        for m in self.meta.members(&pool.id).await? {
            if m.role == MemberRole::Processor {
                continue;
            }
            match fetched.get(&m.id) {
                Some(when) => report.fetched.push((m.name, *when)),
                None => report.missing.push(m.name),
            }
        }
        Ok(report)
    }

    /// One member of the pool, by name.
    pub async fn pool_member_named(
        &self,
        pool: &PoolRecord,
        name: &str,
    ) -> CoreResult<MemberRecord> {
        self.meta
            .members(&pool.id)
            .await?
            .into_iter()
            .find(|m| m.name == name)
            .ok_or(CoreError::from(PoolError::NoSuchMember))
    }

    /// What a member sees of itself: its newest contributions (a page of
    /// `limit` before the id `before`), its newest refused files, and the
    /// latest result with whether it has fetched it.
    pub async fn member_overview(
        &self,
        pool: &PoolRecord,
        member: &MemberRecord,
        before: Option<&str>,
        limit: i64,
    ) -> CoreResult<MemberOverview> {
        let mut contributions = self
            .meta
            .member_contributions_newest_first(&pool.id, &member.id, before, limit + 1)
            .await?;
        let older = (contributions.len() as i64 > limit).then(|| {
            contributions.truncate(limit as usize);
            contributions
                .last()
                .map(|c| c.id.clone())
                .unwrap_or_default()
        });
        let refusals = self
            .meta
            .member_events_newest_first(
                &pool.id,
                &member.id,
                PoolEventKind::ContributionRefused,
                20,
            )
            .await?;
        let me = [member.id.clone()];
        let (latest, fetched_latest) = match self.latest_fetchers(pool, &me).await? {
            Some((group, fetched)) => (Some(group), fetched.contains(&member.id)),
            None => (None, false),
        };
        Ok(MemberOverview {
            contributions,
            older,
            refusals,
            latest,
            fetched_latest,
        })
    }

    /// The newest `limit` webhook delivery attempts, newest first.
    pub async fn webhook_attempts(
        &self,
        pool: &PoolRecord,
        limit: i64,
    ) -> CoreResult<Vec<WebhookAttempt>> {
        Ok(self.meta.webhook_attempts(&pool.id, limit).await?)
    }

    /// The pool's events after `after`, as they are written: a member gets
    /// the pool's and its own, the owner all of them. A member's feed ends
    /// once it is disabled, removed or re-keyed; failed reads are logged
    /// and skipped.
    pub fn pool_event_feed(
        &self,
        access: &PoolAccess,
        after: i64,
    ) -> impl Stream<Item = Arc<PoolEvent>> + Send + 'static {
        let member_id = access.member.as_ref().map(|m| m.id.clone());
        let filter = EventFilter::new(vec![access.pool.id.clone()], member_id.clone());
        let token_hash = access.token_hash.clone();
        let store = self.clone();
        self.follow_events(filter, after)
            .then(move |item| {
                let (store, member_id, token_hash) =
                    (store.clone(), member_id.clone(), token_hash.clone());
                async move {
                    match item {
                        Ok(Some(event)) => Some(Some(event)),
                        // At the start and after each change to the
                        // member: may it still listen?
                        Ok(None) => match (&member_id, &token_hash) {
                            (Some(id), Some(hash))
                                if !store
                                    .meta
                                    .member_active(id, hash)
                                    .await
                                    // Unsure is no: the client reconnects
                                    // and is checked afresh.
                                    .unwrap_or(false) =>
                            {
                                None
                            }
                            _ => Some(None),
                        },
                        Err(e) => {
                            tracing::warn!(error = %e, "reading pool events failed");
                            Some(None)
                        }
                    }
                }
            })
            .take_while(|item| std::future::ready(item.is_some()))
            .filter_map(|item| std::future::ready(item.flatten()))
    }

    /// The events of every pool `who` owns, and of `also` (a pool an
    /// admin is looking at), after `after` (from now when `None`), with
    /// each pool's name by id and where the feed starts; `None` when there
    /// is no pool to follow. Pools created later join at the next
    /// connection.
    pub async fn owner_event_feed(
        &self,
        who: &Principal,
        also: Option<PoolRecord>,
        after: Option<i64>,
    ) -> CoreResult<Option<OwnerFeed<impl Stream<Item = Arc<PoolEvent>> + Send + use<>>>> {
        let mut pools = self.meta.pools(Some(who.user_id.as_str())).await?;
        pools.extend(also);
        if pools.is_empty() {
            return Ok(None);
        }
        let after = match after {
            Some(after) => after,
            None => self.meta.last_pool_event_id().await?,
        };
        let names: HashMap<String, String> = pools.into_iter().map(|p| (p.id, p.name)).collect();
        let filter = EventFilter::new(names.keys().cloned().collect(), None);
        let events = self.follow_events(filter, after).filter_map(|item| {
            std::future::ready(match item {
                Ok(event) => event,
                Err(e) => {
                    tracing::warn!(error = %e, "reading pool events failed");
                    None
                }
            })
        });
        Ok(Some(OwnerFeed {
            names,
            after,
            events,
        }))
    }
}

/// The events of an owner's pools, as they are written.
pub struct OwnerFeed<S> {
    /// Pool id → name.
    pub names: HashMap<String, String>,
    /// The feed has the events after this id.
    pub after: i64,
    pub events: S,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(role: MemberRole) -> MemberRecord {
        MemberRecord {
            id: "m".into(),
            pool_id: "p".into(),
            name: "m".into(),
            role,
            created_ms: 0,
            disabled_ms: None,
        }
    }

    #[test]
    fn each_intent_admits_its_callers() {
        use MemberRole::{Contributor, Listener, Processor};
        use PoolIntent::*;
        // (intent, owner or admin, contributor, listener, processor)
        let table = [
            (View, true, true, true, true),
            (Manage, true, false, false, false),
            (Contribute, false, true, false, false),
            (Seal, true, false, false, true),
            (Process, false, false, false, true),
            (ReadFiles, true, false, false, true),
        ];
        for (intent, owner, contributor, listener, processor) in table {
            assert_eq!(permits(intent, None), owner, "{intent:?} by the owner");
            for (role, expected) in [
                (Contributor, contributor),
                (Listener, listener),
                (Processor, processor),
            ] {
                assert_eq!(
                    permits(intent, Some(&member(role))),
                    expected,
                    "{intent:?} by a {role}"
                );
            }
        }
    }
}
