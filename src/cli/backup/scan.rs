//! Walking the sources of a backup or mirror: every file, folder and
//! symlink under them with its metadata, minus what `--exclude`,
//! `--exclude-from` and `.cisternignore` files leave out (gitignore
//! syntax, through the `ignore` crate that ripgrep uses). What cannot be
//! read is listed, not fatal.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::Excludes;
use super::cache::Stamp;
use super::manifest::Kind;

/// One path found under a source.
#[derive(Debug, Clone)]
pub struct Found {
    /// Where it is on this machine.
    pub local: PathBuf,
    /// Its name in the snapshot: `/`-separated, below the source's name
    /// (or, for a mirror, below the source itself).
    pub name: String,
    pub kind: Kind,
    pub mode: u32,
    pub mtime_ns: i64,
    pub stamp: Stamp,
    pub target: Option<String>,
}

/// A path the walk could not take in, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Unreadable {
    pub path: String,
    pub error: String,
}

#[derive(Default)]
pub struct Scan {
    pub found: Vec<Found>,
    pub unreadable: Vec<Unreadable>,
    /// Sockets, devices and pipes, which are left out.
    pub special: Vec<String>,
}

/// Lists on stderr the paths a run left out because it could not read them.
pub fn tell_unreadable(unreadable: &[Unreadable]) {
    if unreadable.is_empty() {
        return;
    }
    eprintln!(
        "{} paths could not be read and were left out:",
        unreadable.len()
    );
    for u in unreadable {
        eprintln!("  {}: {}", u.path, u.error);
    }
}

/// A source as the user named it, made absolute (symlinks in it are kept).
pub fn absolute(source: &Path) -> anyhow::Result<PathBuf> {
    let path = std::path::absolute(source)
        .with_context(|| format!("cannot make {} absolute", source.display()))?;
    if path.file_name().is_some() && !path.ends_with("..") {
        return Ok(path);
    }
    std::fs::canonicalize(&path).with_context(|| format!("cannot find {}", source.display()))
}

/// Walks each source; in a backup every path starts with its source's
/// name (`keep_names`), in a mirror with what is inside the one source.
pub fn scan(sources: &[PathBuf], excludes: &Excludes, keep_names: bool) -> anyhow::Result<Scan> {
    let mut scan = Scan::default();
    let mut names = std::collections::HashSet::new();
    for source in sources {
        std::fs::symlink_metadata(source)
            .with_context(|| format!("cannot back up {}", source.display()))?;
        let base = match (keep_names, source.file_name()) {
            (false, _) => String::new(),
            (true, Some(name)) => name
                .to_str()
                .with_context(|| format!("{} has a name that is not UTF-8", source.display()))?
                .to_owned(),
            (true, None) => bail!("{} has no name to keep it under", source.display()),
        };
        if !names.insert(base.clone()) {
            bail!(
                "two sources are named {base:?}; back them up in separate runs or from their parent"
            );
        }
        if std::fs::symlink_metadata(source)?.is_symlink() {
            // A symlink named as a source is kept as the link it is.
            match describe(source, base) {
                Ok(Some(found)) => scan.found.push(found),
                Ok(None) => {}
                Err(e) => scan.unreadable.push(Unreadable {
                    path: source.display().to_string(),
                    error: e.to_string(),
                }),
            }
            continue;
        }
        walk(source, &base, excludes, &mut scan)?;
    }
    scan.found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(scan)
}

/// Every exclude glob: `--exclude` and the lines of `--exclude-from`.
fn exclude_globs(excludes: &Excludes) -> anyhow::Result<Vec<String>> {
    let mut globs = excludes.globs.clone();
    for file in &excludes.files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read --exclude-from {}", file.display()))?;
        globs.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    Ok(globs)
}

/// Whether a path below `root` (`/`-separated, relative) is one the
/// exclude rules leave out, whether or not it exists: `--exclude`,
/// `--exclude-from`, and the `.cisternignore` files among `found`. A
/// mirror must not delete what it was told to leave alone.
pub fn excluded_matcher(
    root: &Path,
    excludes: &Excludes,
    found: &[Found],
) -> anyhow::Result<impl Fn(&str) -> bool> {
    use ignore::gitignore::{Gitignore, GitignoreBuilder};
    let mut matchers: Vec<(String, Gitignore)> = Vec::new();
    let mut top = GitignoreBuilder::new(root);
    for glob in exclude_globs(excludes)? {
        top.add_line(None, &glob)
            .with_context(|| format!("--exclude {glob:?} is not a glob"))?;
    }
    matchers.push((String::new(), top.build()?));
    for file in found.iter().filter(|f| f.name.ends_with(".cisternignore")) {
        let folder = file.name.rsplit_once('/').map_or("", |(folder, _)| folder);
        let mut rules = GitignoreBuilder::new(root.join(folder));
        if rules.add(&file.local).is_none() {
            matchers.push((folder.to_owned(), rules.build()?));
        }
    }
    let root = root.to_path_buf();
    Ok(move |name: &str| {
        matchers.iter().any(|(folder, rules)| {
            let inside = folder.is_empty() || name.starts_with(&format!("{folder}/"));
            inside
                && rules
                    .matched_path_or_any_parents(root.join(name), false)
                    .is_ignore()
        })
    })
}

fn walk(root: &Path, base: &str, excludes: &Excludes, scan: &mut Scan) -> anyhow::Result<()> {
    let mut overrides = ignore::overrides::OverrideBuilder::new(root);
    let globs = exclude_globs(excludes)?;
    for glob in &globs {
        overrides
            .add(&format!("!{glob}"))
            .with_context(|| format!("--exclude {glob:?} is not a glob"))?;
    }
    let walker = ignore::WalkBuilder::new(root)
        .standard_filters(false)
        .add_custom_ignore_filename(".cisternignore")
        .follow_links(false)
        .overrides(overrides.build()?)
        .build();
    for entry in walker {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                scan.unreadable.push(Unreadable {
                    path: error_path(&e).unwrap_or_else(|| root.display().to_string()),
                    error: e.to_string(),
                });
                continue;
            }
        };
        let local = entry.path().to_path_buf();
        let relative = local.strip_prefix(root).unwrap_or(Path::new(""));
        let Some(relative) = relative.to_str() else {
            scan.unreadable.push(Unreadable {
                path: local.display().to_string(),
                error: "its name is not UTF-8, which snapshots cannot hold".to_owned(),
            });
            continue;
        };
        let name = match (base.is_empty(), relative.is_empty()) {
            (_, true) => base.to_owned(),
            (true, false) => relative.to_owned(),
            (false, false) => format!("{base}/{relative}"),
        };
        if name.is_empty() {
            continue; // a mirror's own root folder
        }
        match describe(&local, name) {
            Ok(Some(found)) => scan.found.push(found),
            Ok(None) => scan.special.push(local.display().to_string()),
            Err(e) => scan.unreadable.push(Unreadable {
                path: local.display().to_string(),
                error: e.to_string(),
            }),
        }
    }
    Ok(())
}

fn describe(local: &Path, name: String) -> std::io::Result<Option<Found>> {
    let meta = std::fs::symlink_metadata(local)?;
    let file_type = meta.file_type();
    let kind = if file_type.is_file() {
        Kind::File
    } else if file_type.is_dir() {
        Kind::Dir
    } else if file_type.is_symlink() {
        Kind::Symlink
    } else {
        return Ok(None);
    };
    let target = match kind {
        Kind::Symlink => Some(
            std::fs::read_link(local)?
                .into_os_string()
                .into_string()
                .map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "the symlink's target is not UTF-8, which snapshots cannot hold",
                    )
                })?,
        ),
        _ => None,
    };
    let mtime_ns = meta.mtime() * 1_000_000_000 + meta.mtime_nsec();
    Ok(Some(Found {
        local: local.to_path_buf(),
        name,
        kind,
        mode: meta.permissions().mode() & 0o7777,
        mtime_ns,
        stamp: Stamp {
            size: if kind == Kind::File { meta.len() } else { 0 },
            mtime_ns,
            dev: meta.dev(),
            ino: meta.ino(),
        },
        target,
    }))
}

fn error_path(e: &ignore::Error) -> Option<String> {
    match e {
        ignore::Error::WithPath { path, .. } => Some(path.display().to_string()),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            error_path(err)
        }
        _ => None,
    }
}
