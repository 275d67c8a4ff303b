//! `cistern snapshots`: every snapshot of a repository with its time,
//! host, sources, files, bytes and the bytes it added, oldest first.

use serde::Serialize;

use super::SnapshotsArgs;
use super::repo::{Repository, short};
use super::report::size;

#[derive(Serialize)]
struct Listed<'a> {
    id: &'a str,
    time: &'a str,
    host: &'a str,
    paths: &'a [String],
    tags: &'a [String],
    files: u64,
    bytes: u64,
    new_bytes: u64,
}

pub async fn list(args: SnapshotsArgs) -> anyhow::Result<i32> {
    let repo = Repository::open(&args.target).await?;
    let snapshots = repo.snapshots().await?;
    let listed: Vec<Listed> = snapshots
        .iter()
        .map(|(id, s)| Listed {
            id,
            time: &s.time,
            host: &s.host,
            paths: &s.paths,
            tags: &s.tags,
            files: s.summary.files,
            bytes: s.summary.bytes,
            new_bytes: s.summary.new_bytes,
        })
        .collect();
    if args.output.json {
        println!("{}", serde_json::to_string_pretty(&listed)?);
        return Ok(0);
    }
    println!(
        "{:<8}  {:<19}  {:<12}  {:>8}  {:>10}  {:>10}  paths",
        "id", "time", "host", "files", "bytes", "new"
    );
    for s in &listed {
        let mut paths = s.paths.join(" ");
        if !s.tags.is_empty() {
            paths.push_str(&format!(" [{}]", s.tags.join(", ")));
        }
        println!(
            "{:<8}  {:<19}  {:<12}  {:>8}  {:>10}  {:>10}  {paths}",
            short(s.id),
            s.time.get(..19).unwrap_or(s.time).replace('T', " "),
            s.host,
            s.files,
            size(s.bytes),
            size(s.new_bytes),
        );
    }
    if !args.output.quiet {
        println!("{} snapshots", listed.len());
    }
    Ok(0)
}
