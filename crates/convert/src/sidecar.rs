//! The sidecar: a record file kept beside a trace (a BeaverDB file or JSON lines), so that a
//! scan can be given the trace itself. Each [`refresh`] brings it up to date with an
//! incremental `--append` (only the rows added since), rebuilds it when it no longer matches its
//! source, and waits for another process refreshing the same one (the writer's lock).
//!
//! It lives beside the trace (`trace.db.ferret`, `trace.db.ferret-ns-NAME` for another
//! namespace) when that folder is writable, and otherwise in the user's cache folder
//! (`$XDG_CACHE_HOME/ferret`, or `~/.cache/ferret`), named by a hash of the bytes of the trace's
//! full path and of the namespace. It takes the trace's permission bits, and one owned by
//! another user or with more than one name is refused (it may live where others can write).
//! The trace is only ever read.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

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
        // `T.ferret` for the default namespace, `T.ferret-ns-ENC` for another, ENC holding no
        // dot: no trace's name and namespace give another's sidecar name (`T` with namespace
        // `N` and a trace named `T.N` once shared `T.N.ferret`).
        let mut name = OsString::from(file_name);
        name.push(".ferret");
        if namespace != DEFAULT_NAMESPACE {
            name.push(format!("-ns-{}", encode_namespace(namespace)));
        }
        return Ok(Location::Beside(folder.join(name)));
    }
    let no_room = || ConvertError::NoSidecarRoom(source.to_path_buf());
    let cache = cache.filter(|c| writable(c)).ok_or_else(no_room)?;
    let full = std::fs::canonicalize(source).unwrap_or_else(|_| source.to_path_buf());
    // The path's own bytes, not its lossy display: two paths that differ only in bytes that are
    // not UTF-8 must not share a sidecar.
    let mut key = full.as_os_str().as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(namespace.as_bytes());
    let stem = source
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = format!("{stem}-{:016x}.ferret", xxhash_rust::xxh3::xxh3_64(&key));
    Ok(Location::Cache(cache.join(name)))
}

/// A namespace as part of a file name: letters, digits, `_` and `-` as they are, every other
/// byte as `%XX` (so no dot, and no two namespaces alike).
fn encode_namespace(namespace: &str) -> String {
    let mut out = String::with_capacity(namespace.len());
    for b in namespace.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' => out.push(char::from(b)),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
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
/// a temporary file instead, removed when the returned [`Sidecar`] is dropped. `progress`, when
/// given, is called after each batch with the rows done and the rows expected, counted up
/// front for a first conversion (a sidecar made the first time, or a temporary one; an
/// append's total is 0, unknown).
pub fn refresh(
    source: &Path,
    namespace: &str,
    keep: bool,
    progress: Option<&mut dyn FnMut(u64, u64)>,
) -> Result<Sidecar, ConvertError> {
    if source == Path::new("-") {
        return Err(ConvertError::SidecarOfStdin);
    }
    detect(source)?;
    let counted = progress.is_some();
    let mut ignore = |_, _| {};
    let progress = progress.unwrap_or(&mut ignore);
    if !keep {
        return temporary(source, namespace, counted, progress);
    }
    let cache = cache_folder();
    let location = locate(source, namespace, cache.as_deref(), is_writable)?;
    let path = location.path().to_path_buf();
    let mut opts = ConvertOptions::new(source, &path);
    opts.namespace = namespace.to_string();
    opts.append = true;
    opts.wait = true;
    opts.count_rows = counted && !path.exists();
    // Whether to append or make it anew is decided under the writer's lock, by the conversion:
    // two scans of a replaced trace rebuild it once, the second appending nothing to it.
    opts.rebuild_stale = true;
    opts.trusted_only = true;
    let trace = std::fs::metadata(source).map_err(|e| crate::source::io(source, e))?;
    opts.mode = Some(trace.permissions().mode() & 0o666);
    let mut summary = convert(&opts, progress)?;
    Ok(Sidecar {
        path,
        rebuilt: summary.rebuilt.take(),
        summary,
        _temporary: None,
    })
}

/// Converts `source` into a temporary record file (in the system's temporary folder), its rows
/// counted first when `counted`.
fn temporary(
    source: &Path,
    namespace: &str,
    counted: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Sidecar, ConvertError> {
    let io = |e| crate::source::io(&std::env::temp_dir(), e);
    let file = tempfile::Builder::new()
        .prefix(".ferret-scan-")
        .suffix(".ferret")
        .tempfile()
        .map_err(io)?;
    let temp = file.into_temp_path();
    let mut opts = ConvertOptions::new(source, temp.to_path_buf());
    opts.namespace = namespace.to_string();
    opts.count_rows = counted;
    let summary = convert(&opts, progress)?;
    Ok(Sidecar {
        path: temp.to_path_buf(),
        rebuilt: None,
        summary,
        _temporary: Some(temp),
    })
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
            Location::Beside("/traces/app/trace.db.ferret-ns-jobs".into())
        );
        // A trace named like another's namespace never shares its sidecar.
        let a = locate(Path::new("/t/T"), "N", None, yes).unwrap();
        let b = locate(Path::new("/t/T.N"), DEFAULT_NAMESPACE, None, yes).unwrap();
        let c = locate(Path::new("/t/T.ferret-ns"), "N", None, yes).unwrap();
        let d = locate(Path::new("/t/T"), "N.x", None, yes).unwrap();
        assert!(
            a != b && a != c && a != d && b != c,
            "{a:?} {b:?} {c:?} {d:?}"
        );
        assert_eq!(d.path(), Path::new("/t/T.ferret-ns-N%2Ex"));
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
