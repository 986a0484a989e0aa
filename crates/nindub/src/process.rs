//! The process's own memory, as the kernel counts it: what a budget is
//! finally held to.

/// The process's resident memory now and at its peak, in bytes (Linux:
/// `/proc/self/status`; `None` elsewhere).
pub fn rss() -> Option<(u64, u64)> {
    rss_at("self")
}

/// Another process's resident memory now and at its peak (a benchmark's
/// peer server, a child of this process).
pub fn rss_of(pid: u32) -> Option<(u64, u64)> {
    rss_at(&pid.to_string())
}

fn rss_at(pid: &str) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Sets the peak back to the resident memory now (Linux: writing `5` to
/// `/proc/self/clear_refs`), so that the next [`rss`] peak is that of the
/// work in between. False where the kernel does not allow it.
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// [`reset_peak`] for another process this one may write to.
pub fn reset_peak_of(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// The machine's physical memory in bytes (Linux: `MemTotal` of
/// `/proc/meminfo`; `None` elsewhere): what a run without a budget is
/// checked against before it allocates.
pub fn physical_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
