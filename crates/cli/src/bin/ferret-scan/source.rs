//! Where a question's spans come from: the record file given, or the sidecar of a trace given
//! directly, opened with the fallback to the commit before a damaged newest one.

use std::io;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ferret_convert::sidecar::{self, Sidecar};
use ferret_format::{FormatError, Region, SpanFile};
use ferret_parquet::ExportError;
use ferret_scan::ScanError;
use memmap2::Mmap;

/// A record file to scan; a temporary sidecar lives as long as this.
pub struct RecordFile {
    /// The record file's path.
    pub path: PathBuf,
    _sidecar: Option<Sidecar>,
}

/// The record file of `path`: itself, or for a trace (a BeaverDB file or JSON lines) its
/// sidecar, made the first time and brought up to date with only the new rows after (`keep`
/// false: a temporary one), with its notes and warnings on stderr.
pub fn record_file(path: &Path, namespace: &str, keep: bool) -> anyhow::Result<RecordFile> {
    if !is_trace(path)? {
        return Ok(RecordFile {
            path: path.to_path_buf(),
            _sidecar: None,
        });
    }
    let sidecar = match sidecar::refresh(path, namespace, keep) {
        Err(ferret_convert::ConvertError::UnknownInput(path)) => bail!(
            "{}: not a ferret span file, a SQLite database or a JSON lines file (.jsonl, .ndjson): give a trace ferret-io wrote, or its conversion",
            path.display()
        ),
        refreshed => refreshed?,
    };
    if let Some(why) = &sidecar.rebuilt {
        eprintln!(
            "ferret-scan: note: {}: made anew: {why}",
            sidecar.path.display()
        );
    }
    let s = &sidecar.summary;
    for w in &s.warnings {
        eprintln!("ferret-scan: warning: {w}");
    }
    if s.rows_skipped > 0 {
        eprintln!(
            "ferret-scan: warning: {}: {} rows skipped as bad (ferret-convert names them)",
            path.display(),
            s.rows_skipped
        );
    }
    Ok(RecordFile {
        path: sidecar.path.clone(),
        _sidecar: Some(sidecar),
    })
}

/// True when `path` is a trace rather than a record file: it exists, is not empty, and does
/// not start with ferret's magic (a missing or empty file is left to the record file's errors).
fn is_trace(path: &Path) -> anyhow::Result<bool> {
    use std::io::Read;
    let mut head = Vec::new();
    match std::fs::File::open(path) {
        Ok(f) => f.take(8).read_to_end(&mut head).map(|_| ())?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(anyhow::Error::new(e).context(path.display().to_string())),
    }
    Ok(!head.is_empty() && !head.starts_with(&ferret_format::MAGIC[..6]))
}

/// Opens the record file at `path` and answers with `answer`. When the newest commit fails its
/// checks (on open, or in a record block or tag heap a scan reads) and the commit before it is
/// intact, the answer is the previous commit's, with one warning naming what was left out.
/// `verify` (for `--verify`) reports the damage as the error instead.
pub fn with_span_file<T>(
    path: &Path,
    verify: bool,
    answer: impl Fn(&SpanFile<Mmap>) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let file = SpanFile::open(path).with_context(|| path.display().to_string())?;
    if let (Some(f), false) = (file.fallback(), verify) {
        warn_fallback(path, f.lost_records, &f.reason);
    }
    let answered = answer(&file);
    // A record block or tag heap that the newest commit added failed its checksum during the
    // scan: answered again from the commit before it.
    let damage = match &answered {
        Err(e) if !verify => checksum_damage(e)
            .filter(|(segment, _)| file.previous_commit_lacks(*segment))
            .map(|(_, damage)| damage.brief()),
        _ => None,
    };
    let Some(reason) = damage else {
        return answered;
    };
    let previous = SpanFile::open_previous(path).with_context(|| path.display().to_string())?;
    // Saturating: an append may have committed between the two opens.
    let lost = file.record_count().saturating_sub(previous.record_count());
    warn_fallback(path, lost, &reason);
    answer(&previous)
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
