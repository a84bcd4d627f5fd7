//! Which spans a question is about: its population (the files given, a run or several of each,
//! a time window) and the filters of the command line, with relative times counted back from
//! the population's last span end.

use anyhow::{bail, Context};
use ferret_scan::{
    default_run, resolve_run, scan_runs, Filter, RunSummary, ScanError, ScanOptions,
};
use serde_json::{json, Value};

use crate::scan::{local_time, Asked, StatusArg};

/// One run of one file of the population.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    /// The file's place among the files given.
    pub file: usize,
    /// The run's string id in that file.
    pub run: u32,
}

/// The runs a population holds.
#[derive(Clone, Copy, Debug)]
pub enum Runs<'a> {
    /// Each file's default run (ferret's pick: the run of its latest span).
    Default,
    /// Every run of every file.
    All,
    /// The runs these ids or unique prefixes name, each in whichever file holds it.
    Given(&'a [String]),
}

/// A question's population and filters.
#[derive(Clone)]
pub struct Selection {
    /// The runs chosen, file by file.
    pub members: Vec<Member>,
    /// Per file: its runs, when the question needed them (empty otherwise).
    pub runs: Vec<Vec<RunSummary>>,
    /// The filters, times resolved.
    pub filter: Filter,
}

impl Selection {
    /// The run directory's entry of a member, when the runs were read.
    pub fn summary(&self, m: Member) -> Option<&RunSummary> {
        self.runs.get(m.file)?.iter().find(|r| r.run == m.run)
    }

    /// The population's latest span end (its runs' `last_end`; -inf when the runs were not
    /// read): where relative times count back from, and where a live window ends.
    pub fn last_end(&self) -> f64 {
        self.members
            .iter()
            .filter_map(|&m| self.summary(m))
            .map(|r| r.last_end)
            .fold(f64::NEG_INFINITY, f64::max)
    }

    /// The run id of a one-run population; `None` for several runs.
    pub fn one_run_id(&self, q: &Asked) -> Option<String> {
        match self.members[..] {
            [m] => Some(self.run_id(q, m)),
            _ => None,
        }
    }

    /// The run directory's entries of the runs chosen in file `file` (when the runs were read).
    pub fn chosen_runs(&self, file: usize) -> Vec<RunSummary> {
        self.runs[file]
            .iter()
            .filter(|r| self.runs_of(file).any(|run| run == r.run))
            .copied()
            .collect()
    }

    /// The runs chosen in file `file`.
    pub fn runs_of(&self, file: usize) -> impl Iterator<Item = u32> + '_ {
        self.members
            .iter()
            .filter(move |m| m.file == file)
            .map(|m| m.run)
    }

    /// True when the population is one run of one file: outputs read as they always have.
    pub fn is_one_run(&self) -> bool {
        self.members.len() == 1
    }

    /// The run id of a member.
    pub fn run_id(&self, q: &Asked, m: Member) -> String {
        q.files[m.file]
            .file
            .string(m.run)
            .unwrap_or_default()
            .to_string()
    }

    /// What the population is, for a text output's first line: `FILE · run ID` for one run,
    /// else `N files · M runs` and the window.
    pub fn describe(&self, q: &Asked) -> String {
        if let [m] = self.members[..] {
            return format!(
                "{} · run {}",
                q.files[m.file].path.display(),
                self.run_id(q, m)
            );
        }
        let files = self.files().count();
        let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        let mut text = format!(
            "{} · {}",
            plural(files, "file"),
            plural(self.members.len(), "run")
        );
        match (self.filter.since, self.filter.until) {
            (Some(a), Some(b)) => {
                text += &format!(" · from {} until {}", local_time(a), local_time(b))
            }
            (Some(a), None) => text += &format!(" · since {}", local_time(a)),
            (None, Some(b)) => text += &format!(" · until {}", local_time(b)),
            (None, None) => {}
        }
        text
    }

    /// The files that hold a chosen run, in the order given.
    pub fn files(&self) -> impl Iterator<Item = usize> + '_ {
        let mut files: Vec<usize> = self.members.iter().map(|m| m.file).collect();
        files.dedup();
        files.into_iter()
    }

    /// `{"files": [...], "runs": [{"file", "run_id"}], "since", "until"}`: what every JSON
    /// output says the population is (files as given, times as Unix seconds or null).
    pub fn population_json(&self, q: &Asked) -> Value {
        let given = |file: usize| q.files[file].given.display().to_string();
        let runs: Vec<Value> = self
            .members
            .iter()
            .map(|&m| json!({"file": given(m.file), "run_id": self.run_id(q, m)}))
            .collect();
        let files: Vec<String> = self.files().map(given).collect();
        json!({"files": files, "runs": runs, "since": self.filter.since, "until": self.filter.until})
    }

    /// `doc` (a JSON object) as a population of several runs says it: its `run_id` replaced by
    /// the population. A one-run question's JSON stays as it always was.
    pub fn with_population(&self, q: &Asked, mut doc: Value) -> Value {
        if let (Some(fields), false) = (doc.as_object_mut(), self.is_one_run()) {
            fields.remove("run_id");
            fields.insert("population".into(), self.population_json(q));
        }
        doc
    }
}

/// The population the arguments ask for: the runs `runs` of the files, and the filters with the
/// window `since`/`until`. Every file's runs are read (from its run directory; a second pass
/// for a version 1 file) only when runs are named or all asked for, a time is relative, or
/// `need_runs`.
pub fn select(
    q: &Asked,
    runs: Runs,
    (since, until): (Option<&str>, Option<&str>),
    need_runs: bool,
) -> anyhow::Result<Selection> {
    let args = q.args;
    let relative = |t: Option<&str>| t.is_some_and(|t| t.starts_with('-'));
    let read_runs =
        need_runs || !matches!(runs, Runs::Default) || relative(since) || relative(until);
    let opts = ScanOptions {
        verify: !args.no_verify,
        ..ScanOptions::default()
    };
    let mut summaries = Vec::with_capacity(q.files.len());
    for m in q.files {
        summaries.push(match read_runs {
            true => scan_runs(&m.file, &opts, &m.release()).with_context(|| m.ctx())?,
            false => Vec::new(),
        });
    }
    let members = match runs {
        Runs::Default => default_members(q)?,
        Runs::All => summaries
            .iter()
            .enumerate()
            .flat_map(|(file, runs)| runs.iter().map(move |r| Member { file, run: r.run }))
            .collect(),
        Runs::Given(given) => given_members(q, &summaries, given)?,
    };
    if members.is_empty() {
        bail!("the files given hold no spans");
    }
    let mut chosen = Selection {
        members,
        runs: summaries,
        filter: Filter::default(),
    };
    // Relative times count back from the population's last span end (read whenever a time is
    // relative).
    let end = chosen.last_end();
    let time = |t: Option<&str>| t.map(|t| parse_time(t, end)).transpose();
    chosen.filter = Filter {
        name: args.name.clone(),
        errors: args.status.map(|s| matches!(s, StatusArg::Error)),
        since: time(since)?,
        until: time(until)?,
        tag: args.tag.clone(),
        ended: None,
    };
    Ok(chosen)
}

/// Each file's default run; a file without spans has none (one file alone says so).
fn default_members(q: &Asked) -> anyhow::Result<Vec<Member>> {
    let mut members = Vec::new();
    for (file, m) in q.files.iter().enumerate() {
        match default_run(&m.file) {
            Ok(run) => members.push(Member { file, run }),
            Err(ScanError::Empty) if q.files.len() > 1 => {}
            Err(e) => return Err(anyhow::Error::new(e).context(m.ctx())),
        }
    }
    Ok(members)
}

/// A run named that none of several files holds.
#[derive(Debug)]
pub struct NoSuchRun {
    given: String,
    files: usize,
}

impl std::fmt::Display for NoSuchRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no run {:?} in any of the {} files given (--runs lists them)",
            self.given, self.files
        )
    }
}

impl std::error::Error for NoSuchRun {}

/// The runs named by `given` (ids or unique prefixes), each in the one file that holds it; a
/// run named twice counts once.
fn given_members(
    q: &Asked,
    summaries: &[Vec<RunSummary>],
    given: &[String],
) -> anyhow::Result<Vec<Member>> {
    let mut members: Vec<Member> = Vec::new();
    for id in given {
        let mut found = Vec::new();
        for (file, m) in q.files.iter().enumerate() {
            match resolve_run(&m.file, &summaries[file], id) {
                Ok(run) => found.push(Member { file, run }),
                // Among several files, a run is in one of them.
                Err(ScanError::UnknownRun { .. }) if q.files.len() > 1 => {}
                Err(e) => return Err(anyhow::Error::new(e).context(m.ctx())),
            }
        }
        let path = |m: &Member| q.files[m.file].given.display().to_string();
        match found[..] {
            [] => {
                return Err(NoSuchRun {
                    given: id.clone(),
                    files: q.files.len(),
                }
                .into())
            }
            [one] if !members.contains(&one) => members.push(one),
            [_] => {}
            [a, b, ..] => bail!(
                "run {id:?} matches a run in {} and one in {}: give more of its id",
                path(&a),
                path(&b)
            ),
        }
    }
    members.sort_by_key(|m| (m.file, m.run));
    Ok(members)
}

/// Parses `--tag KEY=VALUE`.
pub fn parse_tag(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

/// Parses a time bound: Unix seconds, RFC 3339 with any offset (`Z`, `+02:00`), a date and
/// time without an offset (read as local time, as every output shows times), or `-DURATION`
/// counted back from the population's last span end (`-10m`, `-1h30m`). A bare negative
/// number is refused: it would read as a time in 1969, and is nearly always a duration missing
/// its unit.
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
