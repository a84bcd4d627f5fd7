//! The one writer of a record file: [`OutputFile`] opens it for writing and holds an exclusive
//! advisory lock (`flock`) on it for the writer's whole life, and [`Replacement`] writes a new
//! file beside it that is renamed over it once complete.
//!
//! **Writers never truncate or rewrite what a reader may have mapped.** An append only adds bytes
//! past the committed length. Anything that would take committed bytes away (`--force`, a
//! sidecar made anew, setting aside a damaged newest commit, undoing a `--strict` append) writes
//! a new file beside the old one and renames it over: a reader keeps the file it opened, whole,
//! until it closes it, and whatever fails before the rename leaves the old file as it was.
//!
//! **The lock survives the rename.** It is on the record file itself, not on a lock file beside
//! it: nothing is left behind when a writer is killed (the kernel drops a dead process's locks).
//! A writer that replaces the file locks the new one before renaming it over the path, and holds
//! the old one's lock until then. A writer that waited for the lock then checks that the path
//! still names the file it locked; when a replacement took the path meanwhile, it opens and
//! locks the new file instead, and so on, so it always writes to the file the path names.
//! Readers never lock: they map whole commits only, whatever a writer is doing.
//!
//! The file is opened without following a symbolic link, so a link planted where the output
//! goes (in a shared folder, say) cannot redirect the write; a symlinked output is refused with
//! the target to give instead.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::FormatError;

/// What to do when another writer holds the lock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WhenLocked {
    /// Stop at once with [`FormatError::Locked`].
    #[default]
    Fail,
    /// Wait until the other writer is done.
    Wait,
}

/// A record file opened for writing, locked for this process until dropped.
#[derive(Debug)]
pub struct OutputFile {
    file: File,
    path: PathBuf,
}

/// Opens `path` for reading and writing without following a symbolic link, creating it with
/// `mode` (less the umask) when `create`.
fn open_rw(path: &Path, create: bool, mode: u32) -> Result<File, FormatError> {
    // O_NOFOLLOW refuses a symbolic link as the last component, dangling or not, even when the
    // file is to be created.
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| symlink_or(path, e))
}

/// Takes `file`'s exclusive lock as `when` says.
fn lock(file: &File, path: &Path, when: WhenLocked) -> Result<(), FormatError> {
    match when {
        WhenLocked::Wait => file.lock().map_err(|e| FormatError::io(path, e)),
        WhenLocked::Fail => file.try_lock().map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => FormatError::Locked {
                path: path.to_path_buf(),
            },
            std::fs::TryLockError::Error(e) => FormatError::io(path, e),
        }),
    }
}

/// True when `path` names the very file `file` is (same device and inode).
fn names(path: &Path, file: &File) -> std::io::Result<bool> {
    let (named, held) = (std::fs::symlink_metadata(path)?, file.metadata()?);
    Ok(named.dev() == held.dev() && named.ino() == held.ino())
}

impl OutputFile {
    /// Opens `path` for reading and writing, creating it (mode 0666 less the umask) when
    /// missing, never truncating it, and takes its exclusive lock as `when_locked` says. When a
    /// writer replaced the file while this one waited, the replacement is opened and locked in
    /// turn: the lock held is always that of the file the path names.
    pub fn lock(path: &Path, when_locked: WhenLocked) -> Result<OutputFile, FormatError> {
        let io = |e| FormatError::io(path, e);
        loop {
            let file = open_rw(path, true, 0o666)?;
            lock(&file, path, when_locked)?;
            if !file.metadata().map_err(io)?.is_file() {
                return Err(io(std::io::Error::other("not a regular file")));
            }
            match names(path, &file) {
                Ok(true) => {
                    return Ok(OutputFile {
                        file,
                        path: path.to_path_buf(),
                    })
                }
                // Replaced (or removed) while we waited: lock what the path names now.
                Ok(false) => continue,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(io(e)),
            }
        }
    }

    /// The path it was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Up to `n` bytes from the start of the file, read under the lock.
    pub fn head(&self, n: usize) -> Result<Vec<u8>, FormatError> {
        let mut buf = vec![0u8; n];
        let mut got = 0;
        while got < n {
            match self.file.read_at(&mut buf[got..], got as u64) {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(FormatError::io(&self.path, e)),
            }
        }
        buf.truncate(got);
        Ok(buf)
    }

    /// The file's metadata (its owner, links and mode, for a caller that must trust it).
    pub fn metadata(&self) -> Result<std::fs::Metadata, FormatError> {
        self.file
            .metadata()
            .map_err(|e| FormatError::io(&self.path, e))
    }

    /// Sets the file's permission bits (a sidecar takes its trace's).
    pub fn set_mode(&self, mode: u32) -> Result<(), FormatError> {
        self.file
            .set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))
            .map_err(|e| FormatError::io(&self.path, e))
    }

    /// Removes the file, under its lock: for a file this writer created and never completed.
    pub fn remove(self) -> Result<(), FormatError> {
        std::fs::remove_file(&self.path).map_err(|e| FormatError::io(&self.path, e))
    }

    /// A second handle on the locked file (the lock is the open file's, so it lasts as long
    /// as any handle does).
    pub(crate) fn handle(&self) -> Result<File, FormatError> {
        self.file
            .try_clone()
            .map_err(|e| FormatError::io(&self.path, e))
    }

    /// The locked handle, borrowed.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }
}

/// A new file being written beside a locked record file, to be renamed over it once complete
/// ([`Replacement::install`]): what replaces a record file without touching the bytes its
/// readers mapped. It is named `.NAME.ferret-new` in the same folder (the same filesystem, for
/// the rename), locked from creation so that a writer waiting for the old file's lock waits for
/// this one after the rename; one left by a killed writer is removed by the next.
#[derive(Debug)]
pub struct Replacement {
    file: File,
    temp: PathBuf,
    target: PathBuf,
}

impl Replacement {
    /// Starts a replacement of the file at `target`, whose lock the caller holds, with the
    /// permission bits `mode` (the old file's, or a sidecar's trace's).
    pub fn beside(target: &Path, mode: u32) -> Result<Replacement, FormatError> {
        let target = target.to_path_buf();
        let temp = Replacement::remove_stale(&target)?;
        let io = |e| FormatError::io(&temp, e);
        // Created anew (O_EXCL): never a file someone else planted.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&temp)
            .map_err(|e| symlink_or(&temp, e))?;
        lock(&file, &temp, WhenLocked::Fail)?;
        file.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))
            .map_err(io)?;
        Ok(Replacement { file, temp, target })
    }

    /// Removes the replacement of `target` a killed writer left (writers of the target are
    /// serialized, and the caller holds its lock, so no live one is writing it), and returns its
    /// path.
    pub fn remove_stale(target: &Path) -> Result<PathBuf, FormatError> {
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = target.with_file_name(format!(".{name}.ferret-new"));
        match std::fs::remove_file(&temp) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(FormatError::io(&temp, e)),
            _ => Ok(temp),
        }
    }

    /// The path the new file is written at until it is installed.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// The new file's locked handle.
    pub(crate) fn handle(&self) -> Result<File, FormatError> {
        self.file
            .try_clone()
            .map_err(|e| FormatError::io(&self.temp, e))
    }

    /// Makes the new file durable and renames it over the old one (then the folder's entry
    /// durable): readers that open the path from now on get it; those that opened the old one
    /// keep it. The lock stays with the returned handle.
    pub fn install(self) -> Result<OutputFile, FormatError> {
        let io = |e| FormatError::io(&self.target, e);
        self.file.sync_all().map_err(io)?;
        crate::writer::fault_point("before-rename");
        std::fs::rename(&self.temp, &self.target).map_err(io)?;
        crate::writer::sync_parent_dir(&self.target);
        Ok(OutputFile {
            file: self.file,
            path: self.target,
        })
    }

    /// Gives the replacement up: the new file is removed and the old one stays as it was.
    pub fn discard(self) {
        let _ = std::fs::remove_file(&self.temp);
    }
}

/// An open error, made clear when the path is a symbolic link (O_NOFOLLOW gives ELOOP).
fn symlink_or(path: &Path, e: std::io::Error) -> FormatError {
    if e.raw_os_error() == Some(libc::ELOOP) {
        let target = std::fs::read_link(path)
            .map(|t| t.display().to_string())
            .unwrap_or_else(|_| "its target".into());
        return FormatError::SymlinkOutput {
            path: path.to_path_buf(),
            target,
        };
    }
    FormatError::io(path, e)
}
