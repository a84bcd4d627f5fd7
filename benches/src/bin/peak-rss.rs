//! Runs a command and prints the peak resident memory of that command alone and its wall time:
//! `peak-rss CMD [ARGS...]` prints `peak-rss: KIB SECONDS` as its last stderr line and exits as
//! the command did.
//!
//! The benchmarks measure every command through it rather than from Python: a child's peak RSS
//! (`wait4`) also counts what its process held before `exec`, a copy of its forking parent,
//! and a Python harness is tens of MiB; this launcher is a few hundred KiB.

use std::process::{Command, ExitCode};

use nix::sys::resource::{getrusage, UsageWho};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(program) = args.next() else {
        eprintln!("usage: peak-rss CMD [ARGS...]");
        return ExitCode::from(2);
    };
    let started = std::time::Instant::now();
    let status = match Command::new(&program).args(args).status() {
        Ok(status) => status,
        Err(e) => {
            eprintln!("peak-rss: {}: {e}", program.to_string_lossy());
            return ExitCode::from(127);
        }
    };
    let elapsed = started.elapsed().as_secs_f64();
    // The children's peak: the one child waited for, the only one this process had. A command
    // killed by a signal (an OOM kill: 9) exits 128 + the signal, as a shell says.
    let code = match status.code() {
        Some(code) => code as u8,
        None => {
            use std::os::unix::process::ExitStatusExt;
            128 + status.signal().unwrap_or(0) as u8
        }
    };
    match getrusage(UsageWho::RUSAGE_CHILDREN) {
        Ok(usage) => eprintln!("peak-rss: {} {elapsed:.6}", usage.max_rss()),
        Err(e) => eprintln!("peak-rss: getrusage: {e}"),
    }
    ExitCode::from(code)
}
