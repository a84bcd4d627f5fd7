//! What both binaries share: how a run ends (the error chain on one line, exit codes, a closed
//! pipe that is not an error), the process's peak memory for the hidden `--print-peak-rss`, and
//! a conversion's [`progress`] bar; and `ferret-scan`'s modes ([`scan`]), which the binary and
//! the Python module share.

pub mod progress;
pub mod scan;

use std::process::ExitCode;

/// Ends a run of `program`: prints its peak resident memory first when `print_peak_rss`, then
/// maps the result to the exit code, printing `program: <error chain>` for a failure. A closed
/// pipe (`| head`) ends the output; it is not an error.
pub fn finish(program: &str, result: anyhow::Result<()>, print_peak_rss: bool) -> ExitCode {
    if print_peak_rss {
        eprintln!("{program}: peak RSS {} KiB", peak_rss_kib().unwrap_or(0));
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<ExitWith>().is_some() => {
            let exit = e.downcast_ref::<ExitWith>().expect("checked above");
            eprintln!("{program}: {}", exit.message);
            ExitCode::from(exit.code)
        }
        Err(e) => {
            eprintln!("{program}: {}", one_line(&e));
            ExitCode::from(1)
        }
    }
}

/// An answer that ends with its own exit code and message rather than 1 (ferret-scan's
/// `--fail-on-regression`: 3).
#[derive(Debug)]
pub struct ExitWith {
    /// The exit code.
    pub code: u8,
    /// What is printed after `program: `.
    pub message: String,
}

impl std::fmt::Display for ExitWith {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ExitWith {}

/// The error and its causes on one line, each said once. Our errors name their cause (and
/// often the file) in their own message, so they read whole where they are shown alone; the
/// plain chain (`{:#}`) would repeat both: `x: x: No such file (os error 2): No such file`.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    let mut parts: Vec<&str> = line.split(": ").collect();
    parts.dedup();
    parts.join(": ")
}

/// True when `e` says a record file failed its checks (a checksum, a truncated or inconsistent
/// file, a bad record): damage, not bad input.
pub fn is_damage(e: &anyhow::Error) -> bool {
    use ferret_format::FormatError as F;
    e.chain().any(|c| {
        let format = c.downcast_ref::<F>().or_else(|| match c.downcast_ref() {
            Some(ferret_scan::ScanError::Format(f)) => Some(f),
            _ => None,
        });
        matches!(
            format,
            Some(
                F::TruncatedHeader { .. }
                    | F::CorruptHeader
                    | F::InvalidHeader(_)
                    | F::Truncated { .. }
                    | F::InvalidSegment { .. }
                    | F::Checksum { .. }
                    | F::BadString { .. }
                    | F::BadRecord { .. }
                    | F::DuplicateStrings
                    | F::NewestCommitDamaged { .. }
            )
        ) || matches!(
            c.downcast_ref(),
            Some(ferret_scan::ScanError::ParentLoop { .. })
        )
    })
}

/// True when `e` is a write to a closed pipe: an I/O error, or one inside serde_json's (whose
/// `source` skips the I/O error itself).
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        let kind = c
            .downcast_ref::<std::io::Error>()
            .map(|io| io.kind())
            .or_else(|| c.downcast_ref::<serde_json::Error>()?.io_error_kind());
        kind == Some(std::io::ErrorKind::BrokenPipe)
    })
}

/// The kernel's high-water mark of this process's resident memory (`VmHWM`), in KiB; Linux only.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
