//! How a long command shows its work: an indicatif bar (files and bytes
//! done, speed, time left) on a terminal, a plain line every ten seconds
//! when stderr is not one, nothing with `--quiet` or `--json`; and the
//! byte sizes people read.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Output;

pub struct Progress {
    bar: Option<ProgressBar>,
    state: Arc<Counters>,
    ticker: Option<tokio::task::JoinHandle<()>>,
    quiet: bool,
}

struct Counters {
    verb: &'static str,
    started: Instant,
    files_done: AtomicU64,
    files_total: u64,
    bytes_done: AtomicU64,
    bytes_total: u64,
}

impl Progress {
    /// `verb` names the work in plain lines ("backup", "restore").
    pub fn start(output: &Output, verb: &'static str, files_total: u64, bytes_total: u64) -> Self {
        let state = Arc::new(Counters {
            verb,
            started: Instant::now(),
            files_done: AtomicU64::new(0),
            files_total,
            bytes_done: AtomicU64::new(0),
            bytes_total,
        });
        let quiet = output.quiet || output.json;
        let on_terminal = std::io::stderr().is_terminal();
        let bar = (!quiet && on_terminal).then(|| {
            let bar = ProgressBar::with_draw_target(Some(bytes_total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {eta} left {msg}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(verb);
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        let ticker = (!quiet && !on_terminal).then(|| {
            let state = state.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(10));
                every.tick().await;
                loop {
                    every.tick().await;
                    eprintln!("{}", state.line());
                }
            })
        });
        let progress = Self {
            bar,
            state,
            ticker,
            quiet,
        };
        progress.update_message();
        progress
    }

    pub fn add_bytes(&self, bytes: u64) {
        self.state.bytes_done.fetch_add(bytes, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }

    pub fn file_done(&self) {
        self.state.files_done.fetch_add(1, Ordering::Relaxed);
        self.update_message();
    }

    fn update_message(&self) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "{}/{} files",
                self.state.files_done.load(Ordering::Relaxed),
                self.state.files_total
            ));
        }
    }

    /// A line that stays (above the bar); not shown with `--quiet`.
    pub fn say(&self, line: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.state.started.elapsed()
    }

    pub fn finish(mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if let Some(ticker) = self.ticker.take() {
            ticker.abort();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if let Some(ticker) = &self.ticker {
            ticker.abort();
        }
    }
}

impl Counters {
    fn line(&self) -> String {
        let done = self.bytes_done.load(Ordering::Relaxed);
        let seconds = self.started.elapsed().as_secs_f64().max(0.001);
        let speed = done as f64 / seconds;
        let left = if speed > 0.0 {
            format!(
                ", {:.0} s left",
                self.bytes_total.saturating_sub(done) as f64 / speed
            )
        } else {
            String::new()
        };
        format!(
            "{}: {}/{} files, {} of {}, {}/s{left}",
            self.verb,
            self.files_done.load(Ordering::Relaxed),
            self.files_total,
            size(done),
            size(self.bytes_total),
            size(speed as u64),
        )
    }
}

/// Bytes as people read them (binary units).
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Megabytes (MiB) per second over a duration.
pub fn speed(bytes: u64, took: Duration) -> String {
    format!(
        "{:.1} MiB/s",
        bytes as f64 / 1_048_576.0 / took.as_secs_f64().max(0.001)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(super::size(0), "0 B");
        assert_eq!(super::size(1023), "1023 B");
        assert_eq!(super::size(100 * 1024 * 1024), "100.0 MiB");
    }
}
