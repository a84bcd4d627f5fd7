//! The one writer of a record file: [`OutputFile`] opens it for writing and holds an exclusive
//! advisory lock (`flock`) on it for the writer's whole life.
//!
//! The lock is on the record file itself, not on a lock file beside it: nothing is left behind
//! when a writer is killed (the kernel drops a dead process's locks), and there is no second
//! file whose removal could race a writer waiting on it. Readers never lock: they map whole
//! commits only, whatever a writer is doing. The file is opened without following a symbolic
//! link, so a link planted where the output goes (in a shared folder, say) cannot redirect the
//! write; a symlinked output is refused with the target to give instead.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
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

impl OutputFile {
    /// Opens `path` for reading and writing, creating it (mode 0666 less the umask) when
    /// missing, never truncating it, and takes its exclusive lock as `when_locked` says.
    pub fn lock(path: &Path, when_locked: WhenLocked) -> Result<OutputFile, FormatError> {
        let io = |e| FormatError::io(path, e);
        // O_NOFOLLOW refuses a symbolic link as the last component, dangling or not, even
        // when the file is to be created.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| symlink_or(path, e))?;
        match when_locked {
            WhenLocked::Wait => file.lock().map_err(io)?,
            WhenLocked::Fail => file.try_lock().map_err(|e| match e {
                std::fs::TryLockError::WouldBlock => FormatError::Locked {
                    path: path.to_path_buf(),
                },
                std::fs::TryLockError::Error(e) => io(e),
            })?,
        }
        if !file.metadata().map_err(io)?.is_file() {
            return Err(FormatError::io(
                path,
                std::io::Error::other("not a regular file"),
            ));
        }
        Ok(OutputFile {
            file,
            path: path.to_path_buf(),
        })
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

    /// The locked handle (the lock lasts as long as it does).
    pub(crate) fn into_file(self) -> File {
        self.file
    }

    /// The locked handle, borrowed.
    pub(crate) fn file(&self) -> &File {
        &self.file
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
