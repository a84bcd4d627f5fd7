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

/// Parses a time bound: Unix seconds, RFC 3339 with any offset (`Z`, `+02:00`), a date and
/// time without an offset (read as local time, as every output shows times), or `-DURATION`
/// counted back from the run's end (`-10m`, `-1h30m`). A bare negative number is refused: it
/// would read as a time in 1969, and is nearly always a duration missing its unit.
pub fn parse_time(t: &str, run_end: f64) -> anyhow::Result<f64> {
    let t = t.trim();
    if let Some(rel) = t.strip_prefix('-') {
        if rel.parse::<f64>().is_ok() {
            anyhow::bail!(
                "bad time {t:?}: a bare negative number is not a time; give a duration before the end with its unit, like -{rel}s"
            );
        }
        let d = humantime::parse_duration(rel)
            .with_context(|| format!("bad relative time {t:?} (want e.g. -1h, -30s)"))?;
        return Ok(run_end - d.as_secs_f64());
    }
    if let Ok(secs) = t.parse::<f64>() {
        anyhow::ensure!(secs.is_finite(), "bad time {t:?}: not a finite number");
        return Ok(secs);
    }
    // RFC 3339, or a time as ferret-scan prints it (`2026-11-25 10:00:00.000000 +02:00`), so a
    // time copied from an output reads back as the same instant.
    let with_offset = chrono::DateTime::parse_from_rfc3339(t)
        .or_else(|_| chrono::DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f %:z"));
    if let Ok(at) = with_offset {
        return Ok(unix_seconds(at.timestamp(), at.timestamp_subsec_nanos()));
    }
    let naive = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(t, f).ok())
        .or_else(|| {
            let day = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d").ok()?;
            day.and_hms_opt(0, 0, 0)
        })
        .with_context(|| {
            format!("bad time {t:?} (want RFC 3339 like 2026-11-25T10:00:00+02:00, a local date and time like 2026-11-25 10:00, Unix seconds, or -1h)")
        })?;
    // A local time that a clock change skipped has no instant; one it repeated has two, and
    // the earlier is taken.
    let local = naive
        .and_local_timezone(chrono::Local)
        .earliest()
        .with_context(|| {
            format!("bad time {t:?}: that local time does not exist (a clock change skipped it)")
        })?;
    Ok(unix_seconds(
        local.timestamp(),
        local.timestamp_subsec_nanos(),
    ))
}

fn unix_seconds(secs: i64, nanos: u32) -> f64 {
    secs as f64 + f64::from(nanos) * 1e-9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_take_offsets_local_times_and_refuse_bare_negative_numbers() {
        let at = 1_795_593_600.0; // 2026-11-25T08:00:00Z
        for given in [
            "2026-11-25T08:00:00Z",
            "2026-11-25T10:00:00+02:00",
            "2026-11-25T03:00:00-05:00",
            "2026-11-25 08:00:00Z",
            "2026-11-25 10:00:00.000000 +02:00",
            "1795593600",
        ] {
            assert_eq!(parse_time(given, 0.0).unwrap(), at, "{given}");
        }
        assert_eq!(
            parse_time("2026-11-25T08:00:00.25Z", 0.0).unwrap(),
            at + 0.25
        );
        // Without an offset: the local time zone's.
        let local = chrono::NaiveDate::from_ymd_opt(2026, 11, 25)
            .unwrap()
            .and_hms_opt(10, 0, 0)
            .unwrap()
            .and_local_timezone(chrono::Local)
            .unwrap()
            .timestamp() as f64;
        for given in [
            "2026-11-25T10:00:00",
            "2026-11-25 10:00",
            "2026-11-25 10:00:00.000",
        ] {
            assert_eq!(parse_time(given, 0.0).unwrap(), local, "{given}");
        }
        assert_eq!(parse_time("-10m", at).unwrap(), at - 600.0);
        let bare = parse_time("-600", at).unwrap_err().to_string();
        assert!(bare.contains("-600s"), "{bare}");
        for bad in ["yesterday", "2026-13-01", "NaN", "inf"] {
            assert!(parse_time(bad, at).is_err(), "{bad}");
        }
    }
}
