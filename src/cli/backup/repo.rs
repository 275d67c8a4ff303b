//! A repository in a bucket: its `config` object, the content under
//! `data/` named by hash, and the snapshot manifests under `snapshots/`,
//! each named by the SHA-256 of its own bytes. Snapshots are found by id,
//! by a unique prefix of one, or as `latest`.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, bail};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStore, PutPayload};

use super::manifest::{
    REPOSITORY_FORMAT, RepositoryConfig, SNAPSHOT_FORMAT, Snapshot, content_name, hex_sha256,
    is_sha256,
};
use super::store::{Location, Target, is_missing};

/// What opening does when the prefix holds no repository.
#[derive(PartialEq, Eq)]
enum Missing {
    Refuse,
    Create,
    Accept,
}

pub struct Repository {
    pub store: Arc<dyn ObjectStore>,
    pub location: Location,
    pub config: RepositoryConfig,
    /// What the store's settings resolved to, for the action log.
    pub resolved: super::store::Resolved,
}

impl Repository {
    /// The repository at `--to`; it must exist already.
    pub async fn open(target: &Target) -> anyhow::Result<Self> {
        Self::connect(target, Missing::Refuse)
            .await?
            .context("no repository")
    }

    /// The repository at `--to`, made there when the prefix holds none.
    pub async fn open_or_create(target: &Target) -> anyhow::Result<Self> {
        Self::connect(target, Missing::Create)
            .await?
            .context("no repository")
    }

    /// The repository at `--to`, if there is one.
    pub async fn probe(target: &Target) -> anyhow::Result<Option<Self>> {
        Self::connect(target, Missing::Accept).await
    }

    async fn connect(target: &Target, missing: Missing) -> anyhow::Result<Option<Self>> {
        let location = target.location()?;
        let resolved = target.endpoint.resolve()?;
        let store = resolved.store(&location.bucket)?;
        let config_key = location.key("config");
        let config = match store.get(&config_key).await {
            Ok(found) => {
                let bytes = found
                    .bytes()
                    .await
                    .context("cannot read the repository's config")?;
                let config: RepositoryConfig =
                    serde_json::from_slice(&bytes).with_context(|| {
                        format!(
                            "{} holds a config object that is not a repository's",
                            location.url()
                        )
                    })?;
                if config.format != REPOSITORY_FORMAT {
                    bail!(
                        "{} is a repository of format {:?}; this version reads {REPOSITORY_FORMAT:?}",
                        location.url(),
                        config.format
                    );
                }
                config
            }
            Err(e) if is_missing(&e) && missing == Missing::Accept => return Ok(None),
            Err(e) if is_missing(&e) && missing == Missing::Create => {
                let config = RepositoryConfig {
                    format: REPOSITORY_FORMAT.to_owned(),
                    id: uuid::Uuid::new_v4().simple().to_string(),
                    created: chrono::Utc::now()
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                };
                store
                    .put(
                        &config_key,
                        PutPayload::from(serde_json::to_vec_pretty(&config)?),
                    )
                    .await
                    .with_context(|| format!("cannot create a repository at {}", location.url()))?;
                config
            }
            Err(e) if is_missing(&e) => bail!(
                "there is no repository at {} (no config object); back up there first",
                location.url()
            ),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot reach {}", location.url()));
            }
        };
        Ok(Some(Self {
            store,
            location,
            config,
            resolved,
        }))
    }

    /// Every piece of content the repository holds, by hash, with its size.
    pub async fn contents(&self) -> anyhow::Result<HashMap<String, u64>> {
        let prefix = self.location.key("data");
        let mut found = HashMap::new();
        let mut listing = self.store.list(Some(&prefix));
        while let Some(meta) = listing.next().await {
            let meta = meta.context("cannot list the repository's content")?;
            // Only what a backup writes: anything else under data/ is left be.
            if let Some(name) = meta.location.filename()
                && is_sha256(name)
                && meta.location == self.location.key(&content_name(name))
            {
                found.insert(name.to_owned(), meta.size);
            }
        }
        Ok(found)
    }

    /// The ids of every snapshot.
    async fn snapshot_ids(&self) -> anyhow::Result<Vec<String>> {
        let prefix = self.location.key("snapshots");
        let metas: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .context("cannot list the repository's snapshots")?;
        Ok(metas
            .iter()
            .filter_map(|m| m.location.filename().map(str::to_owned))
            .collect())
    }

    pub async fn load(&self, id: &str) -> anyhow::Result<Snapshot> {
        let key = self.location.key(&format!("snapshots/{id}"));
        let bytes = self
            .store
            .get(&key)
            .await
            .with_context(|| format!("cannot read snapshot {id}"))?
            .bytes()
            .await
            .with_context(|| format!("cannot read snapshot {id}"))?;
        if hex_sha256(&bytes) != id {
            bail!("snapshot {id} does not match its id: the repository is damaged");
        }
        let snapshot: Snapshot = serde_json::from_slice(&bytes)
            .with_context(|| format!("snapshot {id} is not a snapshot manifest"))?;
        let bad_hash = snapshot.entries.iter().find(|e| {
            e.sha256.as_deref().is_some_and(|h| !is_sha256(h))
                || (e.kind == super::manifest::Kind::File && e.sha256.is_none())
        });
        if let Some(entry) = bad_hash {
            bail!(
                "snapshot {id} gives {:?} no valid SHA-256: the repository is damaged",
                entry.path
            );
        }
        if snapshot.format != SNAPSHOT_FORMAT {
            bail!(
                "snapshot {id} has format {:?}; this version reads {SNAPSHOT_FORMAT:?}",
                snapshot.format
            );
        }
        Ok(snapshot)
    }

    /// Every snapshot with its id, oldest first.
    pub async fn snapshots(&self) -> anyhow::Result<Vec<(String, Snapshot)>> {
        let ids = self.snapshot_ids().await?;
        let mut all: Vec<(String, Snapshot)> = futures::stream::iter(ids)
            .map(|id| async move {
                let snapshot = self.load(&id).await?;
                anyhow::Ok((id, snapshot))
            })
            .buffer_unordered(8)
            .try_collect()
            .await?;
        all.sort_by(|a, b| a.1.time().cmp(&b.1.time()).then_with(|| a.0.cmp(&b.0)));
        Ok(all)
    }

    /// A snapshot named by id, unique id prefix, or `latest`.
    pub async fn find(&self, name: &str) -> anyhow::Result<(String, Snapshot)> {
        if name == "latest" {
            return self
                .snapshots()
                .await?
                .pop()
                .with_context(|| format!("{} has no snapshots yet", self.location.url()));
        }
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_hexdigit()) {
            bail!("{name:?} is not a snapshot id: give an id, a prefix of one, or `latest`");
        }
        let name = name.to_ascii_lowercase();
        let matching: Vec<String> = self
            .snapshot_ids()
            .await?
            .into_iter()
            .filter(|id| id.starts_with(&name))
            .collect();
        match matching.as_slice() {
            [id] => Ok((id.clone(), self.load(id).await?)),
            [] => bail!(
                "no snapshot in {} has an id starting {name}",
                self.location.url()
            ),
            _ => bail!(
                "{} snapshots have ids starting {name}; give more of the id",
                matching.len()
            ),
        }
    }

    /// Stores a manifest; its id.
    pub async fn save(&self, snapshot: &Snapshot) -> anyhow::Result<String> {
        let bytes = Bytes::from(serde_json::to_vec(snapshot)?);
        let id = hex_sha256(&bytes);
        self.store
            .put(
                &self.location.key(&format!("snapshots/{id}")),
                PutPayload::from(bytes),
            )
            .await
            .context("cannot store the snapshot's manifest")?;
        Ok(id)
    }

    pub async fn remove_snapshot(&self, id: &str) -> anyhow::Result<()> {
        self.store
            .delete(&self.location.key(&format!("snapshots/{id}")))
            .await
            .with_context(|| format!("cannot remove snapshot {id}"))
    }
}

/// The short form of a snapshot id that people read.
pub fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}
