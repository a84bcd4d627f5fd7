//! Which spans a question is about: its run (given, or the one ferret picks) and the filters of
//! the command line, with relative times counted back from the run's end.

use anyhow::Context;
use ferret_scan::{default_run, resolve_run, scan_runs, Filter, RunSummary, ScanOptions};

use crate::{Asked, StatusArg};

/// A run and the filters, as they apply to one file.
#[derive(Clone)]
pub struct Selection {
    /// The run's string id in the file.
    pub run: u32,
    /// The file's runs, when the question needed them (empty otherwise).
    pub runs: Vec<RunSummary>,
    /// The filters, times resolved.
    pub filter: Filter,
}

/// The run of the file that `run` names (an id or a unique prefix; `None`: the run of the latest
/// span, as ferret picks) and the filters of the arguments. The file's runs are read (a second pass)
/// only when a run is named, a time is relative to the run's end, or `need_runs`.
pub fn select(q: &Asked, run: Option<&str>, need_runs: bool) -> anyhow::Result<Selection> {
    let (args, file) = (q.args, q.file);
    let ctx = || q.path.display().to_string();
    let relative = |t: &Option<String>| t.as_deref().is_some_and(|t| t.starts_with('-'));
    let opts = ScanOptions {
        verify: !args.no_verify,
        ..ScanOptions::default()
    };
    let runs = if need_runs || run.is_some() || relative(&args.since) || relative(&args.until) {
        scan_runs(file, &opts, q.release).with_context(ctx)?
    } else {
        Vec::new()
    };
    let run = match run {
        Some(given) => resolve_run(file, &runs, given).with_context(ctx)?,
        None => default_run(file).with_context(ctx)?,
    };
    // Relative times count back from the run's end (the latest run's end with --all-runs).
    let run_end = runs
        .iter()
        .filter(|r| args.all_runs || r.run == run)
        .map(|r| r.last_end)
        .fold(0.0, f64::max);
    let time = |t: &Option<String>| t.as_deref().map(|t| parse_time(t, run_end)).transpose();
    let filter = Filter {
        name: args.name.clone(),
        errors: args.status.map(|s| matches!(s, StatusArg::Error)),
        since: time(&args.since)?,
        until: time(&args.until)?,
        tag: args.tag.clone(),
    };
    Ok(Selection { run, runs, filter })
}

/// Parses `--tag KEY=VALUE`.
pub fn parse_tag(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

/// Parses a time bound: Unix seconds, RFC 3339, or `-DURATION` before the run's end.
fn parse_time(t: &str, run_end: f64) -> anyhow::Result<f64> {
    if let Ok(secs) = t.parse::<f64>() {
        return Ok(secs);
    }
    if let Some(rel) = t.strip_prefix('-') {
        let d = humantime::parse_duration(rel)
            .with_context(|| format!("bad relative time {t:?} (want e.g. -1h, -30s)"))?;
        return Ok(run_end - d.as_secs_f64());
    }
    let at = humantime::parse_rfc3339_weak(t)
        .with_context(|| format!("bad time {t:?} (want RFC 3339, Unix seconds, or -1h)"))?;
    Ok(at
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0))
}
