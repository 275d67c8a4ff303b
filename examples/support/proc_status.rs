//! A process's memory as Linux reports it in `/proc/PID/status`, for the
//! benchmark programs (each includes this file as a module).

/// A `/proc/PID/status` figure given in KiB (`VmHWM`, `VmRSS`), in MiB.
fn status_mib(pid: Option<u32>, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The process's peak resident memory so far.
pub fn peak_rss_mib(pid: Option<u32>) -> Option<f64> {
    status_mib(pid, "VmHWM:")
}

/// The process's resident memory now.
#[allow(dead_code)] // Not every benchmark reads it.
pub fn rss_mib(pid: Option<u32>) -> Option<f64> {
    status_mib(pid, "VmRSS:")
}
