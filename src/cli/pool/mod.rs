//! `cistern pool push | watch | process`: a pool member's side of the JSON
//! API. This module holds the command-line arguments and sends each command
//! to its file: `push` sends files (through a local spool when asked, so
//! nothing is lost while the server is away), `watch` keeps a directory up
//! to date with the pool's results, and `process` turns sealed groups into
//! results with any command; `client` is what all three share to talk to
//! the server. All three resume where they stopped after a restart of
//! either side.

mod client;
mod process;
mod push;
mod watch;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use self::client::{Client, Refused};
use self::process::Work;

#[derive(Args, Clone, Debug)]
pub struct PoolArgs {
    #[command(subcommand)]
    pub command: PoolCommand,
}

/// Where and who: every pool command needs these.
#[derive(Args, Clone)]
pub struct Member {
    /// The web port of the server.
    #[arg(long, env = "CISTERN_SERVER", default_value = "http://127.0.0.1:9001")]
    pub server: String,
    /// The pool's name.
    #[arg(long, env = "CISTERN_POOL")]
    pub pool: String,
    /// The member token the pool's owner handed out.
    #[arg(long, env = "CISTERN_POOL_TOKEN", hide_env_values = true)]
    pub token: String,
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("server", &self.server)
            .field("pool", &self.pool)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Exit codes that every pool command shares.
const EXIT_CODES: &str = "\
Exit codes: 0 done; 1 some of the work failed (a file refused, a group's \
command failed or its failure could not be reported) or another error; \
2 usage error; 75 push gave up for now (files stay in the spool); 77 the \
server refuses this member (disabled, removed or re-keyed by the pool's \
owner, or a role that may not do this).";

/// Exit code when the server refuses the member itself (sysexits' NOPERM).
const EXIT_REFUSED: i32 = 77;

#[derive(Subcommand, Clone, Debug)]
pub enum PoolCommand {
    /// Send files, each with its modification time (or --timestamp).
    #[command(after_help = EXIT_CODES)]
    Push {
        #[command(flatten)]
        member: Member,
        /// RFC 3339 time for every file instead of its modification time.
        #[arg(long)]
        timestamp: Option<String>,
        /// Copy files into this spool first and send them whenever the
        /// server answers; a file leaves the spool only after its receipt.
        /// With no FILE, sends what the spool holds.
        #[arg(long)]
        spool: Option<PathBuf>,
        /// Files per request.
        #[arg(long, default_value_t = 32)]
        batch: usize,
        /// Give up after this many seconds without reaching the server
        /// (spooled files stay for the next run); default never.
        #[arg(long)]
        give_up_secs: Option<u64>,
        files: Vec<PathBuf>,
    },
    /// Follow the pool's events and download each new result into a
    /// directory. Waits out network errors and server errors; stops when
    /// the server refuses this member.
    #[command(after_help = EXIT_CODES)]
    Watch {
        #[command(flatten)]
        member: Member,
        /// Results land here as `<group>.result`, the newest also as `latest`.
        #[arg(long)]
        out: PathBuf,
        /// Stop after this many results (default: run until stopped).
        #[arg(long)]
        count: Option<usize>,
    },
    /// Claim sealed groups and turn each into a result with a command.
    /// A command that fails is reported: the group returns to the pool for
    /// another attempt (three in all, lapsed leases included), unless the
    /// command exits with --final-exit-code.
    #[command(after_help = EXIT_CODES)]
    Process {
        #[command(flatten)]
        member: Member,
        /// Run through `sh -c`; `{input}` is a directory holding
        /// manifest.json and files/<id>, `{output}` the file to write.
        #[arg(long)]
        exec: String,
        /// Seconds a claim holds a group; renewed at a third of it.
        #[arg(long, default_value_t = 300)]
        lease_secs: u64,
        /// Seconds between looks for a sealed group when none is waiting.
        #[arg(long, default_value_t = 5)]
        poll_secs: u64,
        /// Stop after this many groups (default: run until stopped); the
        /// exit code then says whether every one was published.
        #[arg(long)]
        count: Option<usize>,
        /// The command's exit status that means "retrying cannot help"
        /// (bad input, say): the group then fails at once instead of
        /// returning for another attempt. Default: every failure is retried.
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..=255))]
        final_exit_code: Option<i32>,
    },
}

pub async fn run(args: PoolArgs) -> anyhow::Result<i32> {
    let name = match &args.command {
        PoolCommand::Push { .. } => "push",
        PoolCommand::Watch { .. } => "watch",
        PoolCommand::Process { .. } => "process",
    };
    match run_command(args.command).await {
        Err(e) => match e.downcast_ref::<Refused>() {
            Some(refused) => {
                eprintln!("error: {refused}; {name} stops");
                Ok(EXIT_REFUSED)
            }
            None => Err(e),
        },
        done => done,
    }
}

async fn run_command(command: PoolCommand) -> anyhow::Result<i32> {
    match command {
        PoolCommand::Push {
            member,
            timestamp,
            spool,
            batch,
            give_up_secs,
            files,
        } => {
            let client = Client::new(member)?;
            let give_up = give_up_secs.map(Duration::from_secs);
            match spool {
                Some(spool) => {
                    push::push_spooled(
                        &client,
                        &spool,
                        &files,
                        timestamp.as_deref(),
                        batch,
                        give_up,
                    )
                    .await
                }
                None => {
                    push::push_direct(&client, &files, timestamp.as_deref(), batch, give_up).await
                }
            }
        }
        PoolCommand::Watch { member, out, count } => {
            watch::watch(&Client::new(member)?, &out, count).await?;
            Ok(0)
        }
        PoolCommand::Process {
            member,
            exec,
            lease_secs,
            poll_secs,
            count,
            final_exit_code,
        } => {
            let work = Work {
                exec,
                lease_secs,
                final_exit_code,
            };
            let failed = process::process(
                &Client::new(member)?,
                &work,
                Duration::from_secs(poll_secs),
                count,
            )
            .await?;
            Ok(if failed > 0 { 1 } else { 0 })
        }
    }
}
