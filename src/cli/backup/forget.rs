//! `cistern forget`: remove snapshots a keep policy does not hold on to
//! (restic's rules: the N newest, and the newest of each of the last N
//! days, weeks and months that have one, in local time), then with
//! `--prune` delete content no remaining snapshot names. Prune holds an
//! exclusive lock, so it never runs beside a backup that may be about to
//! name content it would delete.

use std::collections::HashSet;

use anyhow::{Context, bail};
use chrono::Datelike;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use super::ForgetArgs;
use super::action_log::{ActionLog, Figures, failed};
use super::locks::Lock;
use super::manifest::Snapshot;
use super::repo::{Repository, short};
use super::report::size;

#[derive(Serialize)]
struct Decision {
    id: String,
    time: String,
    keep: bool,
    /// Which rules keep it (`last`, `daily`, `weekly`, `monthly`).
    reasons: Vec<&'static str>,
}

#[derive(Serialize, Default)]
struct Pruned {
    deleted_objects: u64,
    deleted_bytes: u64,
    kept_objects: u64,
    kept_bytes: u64,
}

/// How many snapshots each rule keeps.
#[derive(Clone, Copy, Default)]
pub struct Policy {
    pub last: usize,
    pub daily: usize,
    pub weekly: usize,
    pub monthly: usize,
}

pub async fn forget(args: ForgetArgs) -> anyhow::Result<i32> {
    let policy = Policy {
        last: args.keep_last,
        daily: args.keep_daily,
        weekly: args.keep_weekly,
        monthly: args.keep_monthly,
    };
    if policy.last + policy.daily + policy.weekly + policy.monthly == 0 {
        bail!("say what to keep with --keep-last, --keep-daily, --keep-weekly or --keep-monthly");
    }
    let repo = Repository::open(&args.target).await?;
    let log = match args.dry_run {
        true => None,
        false => Some(
            ActionLog::begin(
                &args.log,
                &repo.resolved,
                "forget",
                repo.location.url(),
                repo.location.url(),
                None,
            )
            .await,
        ),
    };
    let outcome = forget_and_prune(&args, &repo, policy).await;
    match outcome {
        Ok((decisions, pruned, figures)) => {
            if let Some(log) = log {
                log.end("complete", figures).await;
            }
            report(&args, &decisions, pruned.as_ref())?;
            Ok(0)
        }
        Err(e) => Err(failed(log, e, Figures::default()).await),
    }
}

async fn forget_and_prune(
    args: &ForgetArgs,
    repo: &Repository,
    policy: Policy,
) -> anyhow::Result<(Vec<Decision>, Option<Pruned>, Figures)> {
    let lock = match args.prune && !args.dry_run {
        true => Some(Lock::take(repo, true).await?),
        false => None,
    };
    let outcome = async {
        let snapshots = repo.snapshots().await?;
        let decisions = decide(&snapshots, policy);
        let mut figures = Figures::default();
        if !args.dry_run {
            for d in decisions.iter().filter(|d| !d.keep) {
                repo.remove_snapshot(&d.id).await?;
                figures.snapshots_removed += 1;
            }
        }
        let pruned = match args.prune {
            true => {
                let kept: Vec<&Snapshot> = snapshots
                    .iter()
                    .zip(&decisions)
                    .filter(|(_, d)| d.keep)
                    .map(|((_, s), _)| s)
                    .collect();
                Some(prune(repo, &kept, lock.as_ref(), args.dry_run, &mut figures).await?)
            }
            false => None,
        };
        anyhow::Ok((decisions, pruned, figures))
    }
    .await;
    if let Some(lock) = lock {
        lock.release().await;
    }
    outcome
}

/// Which snapshots the policy keeps, in the order given (oldest first).
/// As restic does, the rules apply to each host's backups of the same
/// sources on their own: a weekly backup of another folder does not push
/// out this one's dailies.
fn decide(snapshots: &[(String, Snapshot)], policy: Policy) -> Vec<Decision> {
    let mut groups: std::collections::BTreeMap<(&str, Vec<&str>), Vec<usize>> = Default::default();
    for (i, (_, snapshot)) in snapshots.iter().enumerate() {
        let mut paths: Vec<&str> = snapshot.paths.iter().map(String::as_str).collect();
        paths.sort_unstable();
        groups.entry((&snapshot.host, paths)).or_default().push(i);
    }
    let mut decisions: Vec<Option<Decision>> = snapshots.iter().map(|_| None).collect();
    for members in groups.values() {
        let group: Vec<&(String, Snapshot)> = members.iter().map(|&i| &snapshots[i]).collect();
        for (&i, decision) in members.iter().zip(decide_group(&group, policy)) {
            decisions[i] = Some(decision);
        }
    }
    decisions
        .into_iter()
        .map(|d| d.expect("every snapshot is in a group"))
        .collect()
}

/// The policy over one group of snapshots, oldest first.
fn decide_group(snapshots: &[&(String, Snapshot)], policy: Policy) -> Vec<Decision> {
    let mut left = [policy.last, policy.daily, policy.weekly, policy.monthly];
    let mut last_bucket: [Option<String>; 4] = Default::default();
    let names = ["last", "daily", "weekly", "monthly"];
    let mut decisions: Vec<Decision> = Vec::with_capacity(snapshots.len());
    for (id, snapshot) in snapshots.iter().rev() {
        let local = snapshot.time().with_timezone(&chrono::Local);
        let buckets = [
            id.clone(),
            local.format("%Y-%m-%d").to_string(),
            format!(
                "{}-W{:02}",
                local.iso_week().year(),
                local.iso_week().week()
            ),
            local.format("%Y-%m").to_string(),
        ];
        let mut reasons = Vec::new();
        for rule in 0..4 {
            if left[rule] > 0 && last_bucket[rule].as_ref() != Some(&buckets[rule]) {
                left[rule] -= 1;
                last_bucket[rule] = Some(buckets[rule].clone());
                reasons.push(names[rule]);
            }
        }
        decisions.push(Decision {
            id: id.clone(),
            time: snapshot.time.clone(),
            keep: !reasons.is_empty(),
            reasons,
        });
    }
    decisions.reverse();
    decisions
}

/// Deletes content that none of `kept` names.
async fn prune(
    repo: &Repository,
    kept: &[&Snapshot],
    lock: Option<&Lock>,
    dry_run: bool,
    figures: &mut Figures,
) -> anyhow::Result<Pruned> {
    let named: HashSet<&str> = kept
        .iter()
        .flat_map(|s| s.entries.iter().filter_map(|e| e.sha256.as_deref()))
        .collect();
    let contents = repo.contents().await?;
    let mut pruned = Pruned::default();
    let mut doomed = Vec::new();
    for (hash, bytes) in contents {
        if named.contains(hash.as_str()) {
            pruned.kept_objects += 1;
            pruned.kept_bytes += bytes;
        } else {
            pruned.deleted_objects += 1;
            pruned.deleted_bytes += bytes;
            doomed.push(repo.location.key(&super::manifest::content_name(&hash)));
        }
    }
    if !dry_run {
        // A thousand at a time, each batch only while the lock still holds.
        for batch in doomed.chunks(1000) {
            if let Some(lock) = lock {
                lock.still_held()?;
            }
            let deleted: Vec<_> = repo
                .store
                .delete_stream(futures::stream::iter(batch.iter().cloned().map(Ok)).boxed())
                .try_collect()
                .await
                .context("cannot delete unneeded content")?;
            figures.files_deleted += deleted.len() as u64;
        }
        figures.bytes_deleted = pruned.deleted_bytes;
    }
    figures.files_skipped = pruned.kept_objects;
    figures.bytes_skipped = pruned.kept_bytes;
    Ok(pruned)
}

fn report(
    args: &ForgetArgs,
    decisions: &[Decision],
    pruned: Option<&Pruned>,
) -> anyhow::Result<()> {
    if args.output.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "dry_run": args.dry_run,
                "snapshots": decisions,
                "prune": pruned,
            }))?
        );
        return Ok(());
    }
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for d in decisions {
        if d.keep {
            if !args.output.quiet {
                println!(
                    "keep    {}  {}  ({})",
                    short(&d.id),
                    d.time,
                    d.reasons.join(", ")
                );
            }
        } else {
            println!("{verb} {}  {}", short(&d.id), d.time);
        }
    }
    let removed = decisions.iter().filter(|d| !d.keep).count();
    println!(
        "{removed} snapshots {verb}, {} kept",
        decisions.len() - removed
    );
    if let Some(p) = pruned {
        let verb = if args.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        println!(
            "prune: {verb} {} unneeded objects ({}); {} objects ({}) still needed",
            p.deleted_objects,
            size(p.deleted_bytes),
            p.kept_objects,
            size(p.kept_bytes)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::backup::manifest::{SNAPSHOT_FORMAT, Summary};

    fn at(time: &str) -> (String, Snapshot) {
        (
            time.to_owned(),
            Snapshot {
                format: SNAPSHOT_FORMAT.into(),
                time: time.into(),
                host: "h".into(),
                paths: vec![],
                tags: vec![],
                summary: Summary::default(),
                entries: vec![],
            },
        )
    }

    #[test]
    fn the_policy_keeps_the_newest_of_each_period() {
        // Noon UTC stays on the same local day in every time zone but the
        // most extreme; the test machine runs in UTC.
        let snapshots = [
            at("2026-10-15T12:00:00Z"),
            at("2026-11-29T12:00:00Z"),
            at("2026-11-30T10:00:00Z"),
            at("2026-11-30T12:00:00Z"),
            at("2026-12-01T12:00:00Z"),
        ];
        let kept = |policy| -> Vec<usize> {
            decide(&snapshots, policy)
                .iter()
                .enumerate()
                .filter(|(_, d)| d.keep)
                .map(|(i, _)| i)
                .collect()
        };
        let none = Policy::default();
        assert_eq!(kept(Policy { last: 1, ..none }), [4]);
        assert_eq!(kept(Policy { daily: 3, ..none }), [1, 3, 4]);
        assert_eq!(kept(Policy { monthly: 2, ..none }), [3, 4]);
        assert_eq!(
            kept(Policy {
                last: 2,
                monthly: 3,
                ..none
            }),
            [0, 3, 4]
        );
    }

    #[test]
    fn each_host_and_set_of_sources_keeps_its_own() {
        let mut snapshots = vec![
            at("2026-11-30T12:00:00Z"),
            at("2026-11-30T13:00:00Z"),
            at("2026-12-01T12:00:00Z"),
        ];
        snapshots[1].1.paths = vec!["/photos".into()];
        let policy = Policy {
            last: 1,
            ..Policy::default()
        };
        let kept: Vec<bool> = decide(&snapshots, policy).iter().map(|d| d.keep).collect();
        assert_eq!(kept, [false, true, true]);
    }
}
