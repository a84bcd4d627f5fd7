//! The sidecar: a record file kept beside a trace (a BeaverDB file or JSON lines), so that a
//! scan can be given the trace itself. Each [`refresh`] brings it up to date with an
//! incremental `--append` (only the rows added since), rebuilds it when it no longer matches its
//! source, and waits for another process refreshing the same one (the writer's lock).
//!
//! It lives beside the trace (`trace.db.ferret`) when that folder is writable, and otherwise in
//! the user's cache folder (`$XDG_CACHE_HOME/ferret`, or `~/.cache/ferret`), named by a hash of
//! the trace's full path and namespace. The trace is only ever read.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use ferret_format::FormatError;

use crate::error::ConvertError;
use crate::pipeline::{convert, ConvertOptions, Summary};
use crate::source::detect;

/// The namespace ferret-io writes its spans under.
pub const DEFAULT_NAMESPACE: &str = "_ferret_trace";

/// A sidecar brought up to date.
#[derive(Debug)]
pub struct Sidecar {
    /// The record file to scan.
    pub path: PathBuf,
    /// Why it was made anew, when it was (it no longer matched its source).
    pub rebuilt: Option<String>,
    /// What the refresh converted.
    pub summary: Summary,
    /// Removes a temporary sidecar when dropped.
    _temporary: Option<tempfile::TempPath>,
}

/// Where a sidecar goes: beside the trace, or in the cache folder.
#[derive(Debug, PartialEq, Eq)]
pub enum Location {
    /// Beside the trace, in its writable folder.
    Beside(PathBuf),
    /// In the user's cache folder (the trace's folder is not writable).
    Cache(PathBuf),
}

impl Location {
    /// The sidecar's path.
    pub fn path(&self) -> &Path {
        match self {
            Location::Beside(p) | Location::Cache(p) => p,
        }
    }
}

/// Where the sidecar of `source` (with `namespace`) lives: beside it when `writable` says its
/// folder is, else in `cache` (the cache folder, when there is one).
pub fn locate(
    source: &Path,
    namespace: &str,
    cache: Option<&Path>,
    writable: impl Fn(&Path) -> bool,
) -> Result<Location, ConvertError> {
    let folder = match source.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = source.file_name().unwrap_or(source.as_os_str());
    if writable(&folder) {
        let mut name = OsString::from(file_name);
        if namespace != DEFAULT_NAMESPACE {
            name.push(format!(".{namespace}"));
        }
        name.push(".ferret");
        return Ok(Location::Beside(folder.join(name)));
    }
    let no_room = || ConvertError::NoSidecarRoom(source.to_path_buf());
    let cache = cache.filter(|c| writable(c)).ok_or_else(no_room)?;
    let full = std::fs::canonicalize(source).unwrap_or_else(|_| source.to_path_buf());
    let key = format!("{}\0{namespace}", full.display());
    let stem = source
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = format!(
        "{stem}-{:016x}.ferret",
        xxhash_rust::xxh3::xxh3_64(key.as_bytes())
    );
    Ok(Location::Cache(cache.join(name)))
}

/// The user's cache folder for sidecars, created when missing: `$XDG_CACHE_HOME/ferret`, or
/// `$HOME/.cache/ferret`. `None` when neither variable is set or it cannot be made.
pub fn cache_folder() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    let folder = base.join("ferret");
    std::fs::create_dir_all(&folder).ok().map(|()| folder)
}

/// True when this process may create files in `folder` (access(2), which asks with the real
/// ids, as the file's creation will be checked).
pub fn is_writable(folder: &Path) -> bool {
    use rustix::fs::Access;
    rustix::fs::access(folder, Access::WRITE_OK | Access::EXEC_OK).is_ok()
}

/// Brings the sidecar of `source` up to date and returns it. With `keep` false, converts into
/// a temporary file instead, removed when the returned [`Sidecar`] is dropped.
pub fn refresh(source: &Path, namespace: &str, keep: bool) -> Result<Sidecar, ConvertError> {
    if source == Path::new("-") {
        return Err(ConvertError::SidecarOfStdin);
    }
    detect(source)?;
    if !keep {
        return temporary(source, namespace);
    }
    let cache = cache_folder();
    let location = locate(source, namespace, cache.as_deref(), is_writable)?;
    let path = location.path().to_path_buf();
    let mut opts = ConvertOptions::new(source, &path);
    opts.namespace = namespace.to_string();
    opts.append = true;
    opts.wait = true;
    let (summary, rebuilt) = match convert(&opts, &mut |_, _| {}) {
        Ok(summary) => (summary, None),
        Err(e) => {
            let Some(why) = stale(&e) else {
                return Err(e);
            };
            opts.append = false;
            opts.force = true;
            (convert(&opts, &mut |_, _| {})?, Some(why))
        }
    };
    Ok(Sidecar {
        path,
        rebuilt,
        summary,
        _temporary: None,
    })
}

/// Converts `source` into a temporary record file (in the system's temporary folder).
fn temporary(source: &Path, namespace: &str) -> Result<Sidecar, ConvertError> {
    let io = |e| crate::source::io(&std::env::temp_dir(), e);
    let file = tempfile::Builder::new()
        .prefix(".ferret-scan-")
        .suffix(".ferret")
        .tempfile()
        .map_err(io)?;
    let temp = file.into_temp_path();
    let mut opts = ConvertOptions::new(source, temp.to_path_buf());
    opts.namespace = namespace.to_string();
    let summary = convert(&opts, &mut |_, _| {})?;
    Ok(Sidecar {
        path: temp.to_path_buf(),
        rebuilt: None,
        summary,
        _temporary: Some(temp),
    })
}

/// Why a sidecar must be made anew, when `e` says it no longer matches its source.
fn stale(e: &ConvertError) -> Option<String> {
    let why = match e {
        ConvertError::SourceRewritten { what, .. } => {
            format!("its source was replaced, vacuumed or shrank ({what})")
        }
        ConvertError::NamespaceMismatch { have, .. } => format!("it holds namespace {have:?}"),
        ConvertError::WatermarkKind(_) => "it was made from another kind of source".into(),
        ConvertError::Format { source, .. } => match source {
            FormatError::AppendToOlder { found }
            | FormatError::OlderVersion { found, .. }
            | FormatError::NewerVersion { found, .. } => {
                format!("it is of format version {found}")
            }
            FormatError::Io { .. } | FormatError::Locked { .. } => return None,
            FormatError::SymlinkOutput { .. } => return None,
            damage => format!("it is damaged ({})", damage.brief()),
        },
        _ => return None,
    };
    Some(why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sidecar_goes_beside_its_trace_or_in_the_cache_keyed_by_path_and_namespace() {
        let yes = |_: &Path| true;
        let db = Path::new("/traces/app/trace.db");
        assert_eq!(
            locate(db, DEFAULT_NAMESPACE, None, yes).unwrap(),
            Location::Beside("/traces/app/trace.db.ferret".into())
        );
        assert_eq!(
            locate(db, "jobs", None, yes).unwrap(),
            Location::Beside("/traces/app/trace.db.jobs.ferret".into())
        );
        assert_eq!(
            locate(Path::new("trace.db"), DEFAULT_NAMESPACE, None, yes).unwrap(),
            Location::Beside("./trace.db.ferret".into())
        );
        // A read-only folder: the cache, by a key of path and namespace.
        let cache = Path::new("/home/u/.cache/ferret");
        let only_cache = |p: &Path| p == cache;
        let in_cache =
            |source: &str, ns: &str| match locate(Path::new(source), ns, Some(cache), only_cache)
                .unwrap()
            {
                Location::Cache(p) => p,
                beside => panic!("{beside:?}"),
            };
        let a = in_cache("/ro/a/trace.db", DEFAULT_NAMESPACE);
        assert!(a.starts_with(cache) && a.to_string_lossy().contains("/trace-"));
        assert_ne!(a, in_cache("/ro/b/trace.db", DEFAULT_NAMESPACE));
        assert_ne!(a, in_cache("/ro/a/trace.db", "jobs"));
        assert_eq!(a, in_cache("/ro/a/trace.db", DEFAULT_NAMESPACE));
        // Neither: a message naming the trace.
        let none = locate(db, DEFAULT_NAMESPACE, Some(cache), |_| false).unwrap_err();
        assert!(none.to_string().contains("/traces/app/trace.db"), "{none}");
        assert!(matches!(
            locate(db, DEFAULT_NAMESPACE, None, |_| false),
            Err(ConvertError::NoSidecarRoom(_))
        ));
    }
}
