//! `cistern backup | snapshots | restore | diff | forget | mirror`: folders
//! kept safe in any S3 store. This module holds the command-line arguments
//! and sends each command to its file. A repository is a prefix of a
//! bucket holding content named by its SHA-256 and one manifest per
//! snapshot (`manifest`, documented in `docs/BACKUP.md`); `store` reaches
//! it the way other S3 tools do, `scan` walks the sources, `cache`
//! remembers hashes between runs, `locks` keeps prune away from running
//! backups, `report` shows progress and `action_log` records each run on
//! a Cistern server.

mod action_log;
mod cache;
mod diff;
mod forget;
mod locks;
mod manifest;
mod mirror;
mod repo;
mod report;
mod restore;
mod run;
mod scan;
mod snapshots;
mod store;

use std::path::PathBuf;

use clap::{Args, Subcommand};

pub use self::store::Target;

/// Exit codes every backup command shares.
pub const EXIT_CODES: &str = "\
Exit codes: 0 complete; 1 failed (nothing an earlier snapshot needs was \
changed; run again to finish); 2 usage error; 3 finished, but some source \
files could not be read (they are listed and left out).";

/// Exit code of a run that finished without some unreadable files.
pub const EXIT_PARTIAL: i32 = 3;

/// How a command shows its work.
#[derive(Args, Clone, Debug, Default)]
pub struct Output {
    /// Print nothing but errors and the final line.
    #[arg(long, short)]
    pub quiet: bool,
    /// Print one JSON document with the results on stdout, for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Clone, Debug)]
#[command(args_conflicts_with_subcommands = true, after_help = EXIT_CODES)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub command: Option<BackupCommand>,
    #[command(flatten)]
    pub run: BackupRun,
}

#[derive(Subcommand, Clone, Debug)]
pub enum BackupCommand {
    /// List the backup, restore, forget and mirror runs the server
    /// recorded for you (the `backup.*` entries of the audit log).
    Log {
        #[command(flatten)]
        target: action_log::ServerArgs,
        /// At most this many runs, newest first.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[command(flatten)]
        output: Output,
    },
}

/// How a command that moves files runs: how many at once, its action
/// log, how it shows its work.
#[derive(Args, Clone, Debug)]
pub struct Running {
    /// Files sent or fetched at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallel: u16,
    #[command(flatten)]
    pub log: action_log::LogArgs,
    #[command(flatten)]
    pub output: Output,
}

/// What the filters of a walk over sources leave out.
#[derive(Args, Clone, Debug, Default)]
pub struct Excludes {
    /// Leave out paths matching this glob (gitignore syntax; repeatable).
    /// A `.cisternignore` file in any folder adds its own lines there.
    #[arg(long = "exclude", value_name = "GLOB")]
    pub globs: Vec<String>,
    /// Read more exclude globs from this file, one per line.
    #[arg(long = "exclude-from", value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

#[derive(Args, Clone, Debug)]
pub struct BackupRun {
    /// Files and folders to back up; each is kept under its own name.
    #[arg(value_name = "SRC")]
    pub sources: Vec<PathBuf>,
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub excludes: Excludes,
    /// List what would be sent, send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// A label for the snapshot (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Where the hash cache lives (default `$XDG_CACHE_HOME/cistern/backup`).
    #[arg(long, env = "CISTERN_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    #[command(flatten)]
    pub running: Running,
}

#[derive(Args, Clone, Debug)]
#[command(after_help = EXIT_CODES)]
pub struct SnapshotsArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Args, Clone, Debug)]
#[command(after_help = EXIT_CODES)]
pub struct RestoreArgs {
    /// A snapshot id, a unique prefix of one, or `latest`.
    pub snapshot: String,
    /// The folder to restore into (created when missing).
    pub dest: PathBuf,
    #[command(flatten)]
    pub target: Target,
    /// Restore only paths matching this glob, and what is under them
    /// (paths as `snapshots` and `diff` show them; repeatable).
    #[arg(long = "include", value_name = "GLOB")]
    pub includes: Vec<String>,
    #[command(flatten)]
    pub running: Running,
}

#[derive(Args, Clone, Debug)]
#[command(after_help = EXIT_CODES)]
pub struct DiffArgs {
    /// The older snapshot (id, unique prefix, or `latest`).
    pub from: String,
    /// The newer snapshot.
    pub to_snapshot: String,
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Args, Clone, Debug)]
#[command(after_help = EXIT_CODES)]
pub struct ForgetArgs {
    #[command(flatten)]
    pub target: Target,
    /// Keep the N newest snapshots.
    #[arg(long, default_value_t = 0)]
    pub keep_last: usize,
    /// Keep the newest snapshot of each of the last N days that have one.
    #[arg(long, default_value_t = 0)]
    pub keep_daily: usize,
    /// Keep the newest snapshot of each of the last N weeks that have one.
    #[arg(long, default_value_t = 0)]
    pub keep_weekly: usize,
    /// Keep the newest snapshot of each of the last N months that have one.
    #[arg(long, default_value_t = 0)]
    pub keep_monthly: usize,
    /// Then delete content that no remaining snapshot refers to (refused
    /// while a backup holds a lock on the repository).
    #[arg(long)]
    pub prune: bool,
    /// Say what would be removed, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub log: action_log::LogArgs,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Args, Clone, Debug)]
#[command(after_help = EXIT_CODES)]
pub struct MirrorArgs {
    /// The folder whose contents are copied.
    pub source: PathBuf,
    /// `s3://bucket/prefix`: the files land under it by their paths.
    pub to: String,
    #[command(flatten)]
    pub target: store::Endpoint,
    #[command(flatten)]
    pub excludes: Excludes,
    /// Then delete objects under the prefix that the folder no longer has
    /// (only after a run with no errors).
    #[arg(long)]
    pub delete: bool,
    /// Refuse to delete anything when more than N objects would go.
    #[arg(long)]
    pub max_delete: Option<usize>,
    /// List what would be copied and deleted, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub running: Running,
}

/// Runs `cistern backup` (or `cistern backup log`); the exit code.
pub async fn backup(args: BackupArgs) -> i32 {
    match args.command {
        Some(BackupCommand::Log {
            target,
            limit,
            output,
        }) => finish(action_log::list(&target, limit, &output).await),
        None if args.run.sources.is_empty() => {
            eprintln!("error: name the files and folders to back up (see --help)");
            2
        }
        None => finish(run::backup(args.run).await),
    }
}

pub async fn snapshots(args: SnapshotsArgs) -> i32 {
    finish(snapshots::list(args).await)
}

pub async fn restore(args: RestoreArgs) -> i32 {
    finish(restore::restore(args).await)
}

pub async fn diff(args: DiffArgs) -> i32 {
    finish(diff::diff(args).await)
}

pub async fn forget(args: ForgetArgs) -> i32 {
    finish(forget::forget(args).await)
}

pub async fn mirror(args: MirrorArgs) -> i32 {
    finish(mirror::mirror(args).await)
}

/// The exit code of a command's outcome; a failure is told on stderr.
fn finish(outcome: anyhow::Result<i32>) -> i32 {
    outcome.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        1
    })
}
