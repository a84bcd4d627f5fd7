//! What both binaries share: the process's peak memory for the hidden `--print-peak-rss`.

/// The kernel's high-water mark of this process's resident memory (`VmHWM`), in KiB; Linux only.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
