//! Where a question's spans come from: the record file given, or the sidecar of a trace given
//! directly, opened with the fallback to the commit before a damaged newest one.

use std::path::{Path, PathBuf};

use crate::progress::Progress;
use anyhow::{bail, Context};
use ferret_convert::sidecar::{self, Sidecar};
use ferret_format::{FormatError, Region, SpanFile};
use ferret_parquet::ExportError;
use ferret_scan::ScanError;
use memmap2::Mmap;

/// A record file to scan; a temporary sidecar lives as long as this.
pub struct RecordFile {
    /// The file as given on the command line (a trace, or the record file itself).
    pub given: PathBuf,
    /// The record file's path.
    pub path: PathBuf,
    /// What bringing it up to date noted or warned of (`note: ...`, `warning: ...`).
    pub notes: Vec<String>,
    _sidecar: Option<Sidecar>,
}

/// The record files of the files given, in order: each trace brought up to date through its
/// own sidecar (with a progress bar on a terminal when `progress`). A file given twice (or a
/// trace and its own sidecar) is refused, naming both.
pub fn record_files(
    given: &[PathBuf],
    namespace: &str,
    keep: bool,
    progress: bool,
) -> anyhow::Result<Vec<RecordFile>> {
    // Every file is checked before any sidecar is made: a bad one stops the question with
    // nothing written.
    let traces = given
        .iter()
        .map(|path| is_trace(path))
        .collect::<anyhow::Result<Vec<bool>>>()?;
    let mut files: Vec<RecordFile> = Vec::with_capacity(given.len());
    let mut seen: Vec<(std::fs::Metadata, usize)> = Vec::new();
    for (path, trace) in given.iter().zip(traces) {
        let record = record_file(path, trace, namespace, keep, progress)?;
        if let Ok(meta) = std::fs::metadata(&record.path) {
            use std::os::unix::fs::MetadataExt;
            let same = seen
                .iter()
                .find(|(m, _)| m.dev() == meta.dev() && m.ino() == meta.ino());
            if let Some(&(_, earlier)) = same {
                bail!(
                    "{} and {} are the same trace: give each file once",
                    files[earlier].given.display(),
                    path.display()
                );
            }
            seen.push((meta, files.len()));
        }
        files.push(record);
    }
    Ok(files)
}

/// The record file of `path`: itself, or for a `trace` (a BeaverDB file or JSON lines) its
/// sidecar, made the first time and brought up to date with only the new rows after (`keep`
/// false: a temporary one; a progress bar on a terminal while it is made, with `progress`),
/// with its notes and warnings.
fn record_file(
    path: &Path,
    trace: bool,
    namespace: &str,
    keep: bool,
    progress: bool,
) -> anyhow::Result<RecordFile> {
    if !trace {
        return Ok(RecordFile {
            given: path.to_path_buf(),
            path: path.to_path_buf(),
            notes: Vec::new(),
            _sidecar: None,
        });
    }
    let bar = Progress::on_terminal(progress);
    let mut shown = |done, total| Progress::show(&bar, done, total);
    let refreshed = sidecar::refresh(path, namespace, keep, bar.is_some().then_some(&mut shown));
    Progress::finish(bar);
    let sidecar = match refreshed {
        Err(ferret_convert::ConvertError::UnknownInput(path)) => return Err(unknown_input(&path)),
        refreshed => refreshed?,
    };
    let mut notes = Vec::new();
    if let Some(why) = &sidecar.rebuilt {
        notes.push(format!(
            "note: {}: made anew: {why}",
            sidecar.path.display()
        ));
    }
    let s = &sidecar.summary;
    notes.extend(s.warnings.iter().map(|w| format!("warning: {w}")));
    if s.rows_skipped > 0 {
        notes.push(format!(
            "warning: {}: {} rows skipped as bad (ferret-convert names them)",
            path.display(),
            s.rows_skipped
        ));
    }
    Ok(RecordFile {
        given: path.to_path_buf(),
        path: sidecar.path.clone(),
        notes,
        _sidecar: Some(sidecar),
    })
}

/// Prints the notes and warnings of bringing the record files up to date.
pub fn say_notes(records: &[RecordFile]) {
    for note in records.iter().flat_map(|r| &r.notes) {
        eprintln!("ferret-scan: {note}");
    }
}

/// A file that is neither a record file nor a trace.
fn unknown_input(path: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "{}: not a ferret span file, a SQLite database or a JSON lines file (.jsonl, .ndjson): give a trace ferret-io wrote, or its conversion",
        path.display()
    )
}

/// True when `path` is a trace rather than a record file: it is not empty and does not start
/// with ferret's magic (an empty file is left to the record file's errors). Fails, naming
/// `path`, when it cannot be read or is neither (not a database, not JSON lines by name).
fn is_trace(path: &Path) -> anyhow::Result<bool> {
    use std::io::Read;
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(8).read_to_end(&mut head))
        .with_context(|| path.display().to_string())?;
    if head.is_empty() || head.starts_with(&ferret_format::MAGIC[..6]) {
        return Ok(false);
    }
    match ferret_convert::detect(path) {
        Err(ferret_convert::ConvertError::UnknownInput(path)) => Err(unknown_input(&path)),
        detected => detected.map(|_| true).map_err(Into::into),
    }
}

/// One file of a question's population, opened: as given, its record file, its mapping, and
/// its place among the files given.
pub struct Opened {
    /// Its place among the files given.
    pub index: usize,
    /// The file as given.
    pub given: PathBuf,
    /// The record file's path.
    pub path: PathBuf,
    /// The record file, mapped.
    pub file: SpanFile<Mmap>,
    /// True once the answer falls back to the commit before a damaged newest one.
    fell_back: bool,
}

impl Opened {
    /// The context of an error about this file: its record file's path, and which of the files
    /// given it is (for the fallback to a previous commit).
    pub fn ctx(&self) -> InFile {
        InFile {
            index: self.index,
            path: self.path.clone(),
        }
    }

    /// What a pass hands a chunk's pages to once folded: back to the page cache, so resident
    /// memory stays at a few chunks per worker, whatever the file's size.
    pub fn release(&self) -> impl Fn(&ferret_format::Segment, std::ops::Range<u64>) + Sync + '_ {
        |seg, range| self.file.release_records(seg, range)
    }
}

/// An error's file: printed as its record file's path.
#[derive(Debug)]
pub struct InFile {
    index: usize,
    path: PathBuf,
}

impl std::fmt::Display for InFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path.display())
    }
}

/// Opens the record files and answers with `answer`. When a file's newest commit fails its
/// checks (on open, or in a record block or tag heap a scan reads) and the commit before it is
/// intact, that file answers from the previous commit, with one warning naming what was left
/// out. `verify` (for `--verify`) reports the damage as the error instead.
pub fn with_span_files<T>(
    records: &[RecordFile],
    verify: bool,
    answer: impl Fn(&[Opened]) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let mut opened = open_all(records, verify)?;
    loop {
        let answered = answer(&opened);
        // A record block or tag heap that a file's newest commit added failed its checksum
        // during the scan: that file answers again from the commit before it.
        let damaged = match &answered {
            Err(e) if !verify => damaged_file(e, &opened),
            _ => None,
        };
        let Some((index, reason)) = damaged else {
            return answered;
        };
        let m = &opened[index];
        let previous =
            SpanFile::open_previous(&m.path).with_context(|| m.path.display().to_string())?;
        // Saturating: an append may have committed between the two opens.
        let lost = m
            .file
            .record_count()
            .saturating_sub(previous.record_count());
        warn_fallback(&m.path, lost, &reason);
        opened[index].file = previous;
        opened[index].fell_back = true;
    }
}

/// Opens the record files, each falling back (with a warning, unless `verify`) to the commit
/// before a newest one that fails its checks on open.
pub fn open_all(records: &[RecordFile], verify: bool) -> anyhow::Result<Vec<Opened>> {
    let mut opened = Vec::with_capacity(records.len());
    for (index, record) in records.iter().enumerate() {
        let path = &record.path;
        let file = SpanFile::open(path).with_context(|| path.display().to_string())?;
        if let (Some(f), false) = (file.fallback(), verify) {
            warn_fallback(path, f.lost_records, &f.reason);
        }
        opened.push(Opened {
            index,
            given: record.given.clone(),
            path: path.clone(),
            file,
            fell_back: false,
        });
    }
    Ok(opened)
}

/// The file (by index) whose newest commit's record block or tag heap failed its checksum in
/// `e`, and that failure, when the commit before it lacks the damaged segment and the file
/// has not fallen back already.
fn damaged_file(e: &anyhow::Error, opened: &[Opened]) -> Option<(usize, String)> {
    let index = match opened {
        [_] => 0,
        _ => e.downcast_ref::<InFile>()?.index,
    };
    let m = opened.get(index).filter(|m| !m.fell_back)?;
    let (segment, damage) = checksum_damage(e)?;
    m.file
        .previous_commit_lacks(segment)
        .then(|| (index, damage.brief()))
}

/// Says once that the answer comes from the commit before a damaged newest one.
fn warn_fallback(path: &Path, lost: u64, reason: &str) {
    eprintln!(
        "ferret-scan: warning: {}: the newest commit ({lost} spans) failed its checks ({reason}); answering from the commit before it (ferret-convert --append adds the lost spans again)",
        path.display()
    );
}

/// The segment whose record block or tag heap failed its checksum, and that failure, if that
/// is what `e` is.
fn checksum_damage(e: &anyhow::Error) -> Option<(usize, &FormatError)> {
    let format = e.chain().find_map(|c| {
        c.downcast_ref::<FormatError>()
            .or_else(|| match c.downcast_ref::<ScanError>() {
                Some(ScanError::Format(f)) => Some(f),
                _ => None,
            })
            .or_else(|| match c.downcast_ref::<ExportError>() {
                Some(ExportError::Format(f)) => Some(f),
                _ => None,
            })
    })?;
    match format {
        FormatError::Checksum {
            region: Region::Records { segment, .. } | Region::Tags { segment, .. },
        } => Some((*segment, format)),
        _ => None,
    }
}

/// Where a question's scratch files go (the per-span table of a flame graph): beside the
/// record file, on the disk that holds the data, when that folder is writable; else the
/// system's temporary folder.
pub fn scratch_dir(record: &Path) -> PathBuf {
    match record.parent() {
        Some(p) if p.as_os_str().is_empty() => PathBuf::from("."),
        Some(p) if sidecar::is_writable(p) => p.to_path_buf(),
        _ => std::env::temp_dir(),
    }
}

/// The notes a scan of `file` starts with: an old format version that reads the whole file,
/// a conversion that was interrupted.
pub fn note_state(path: &Path, file: &SpanFile<Mmap>) {
    if !file.has_index() {
        eprintln!(
            "ferret-scan: note: {}: format version {} has no run directory or block zones, so every question reads the whole file; convert the trace anew (ferret-convert TRACE -o FILE --force) to read only what a question selects",
            path.display(),
            file.version()
        );
    }
    if !file.is_complete() {
        eprintln!(
            "ferret-scan: warning: {}: the conversion that wrote it was interrupted; run ferret-convert --append to complete it",
            path.display()
        );
    }
}
