//! Writing fixed files: atomically (a temporary file in the same directory, synced, then
//! renamed over the original), with the original permissions and owner, and only if the file
//! still holds what was read.
//!
//! What a user can rely on, whatever happens during a write (a full disk, a read-only or
//! immutable file or directory, a file edited or deleted meanwhile, Ctrl-C, a crash):
//! - the file holds either exactly what ctfix read or exactly the fixed text, never a mix;
//! - a file that changed since ctfix read it is left alone (the edit made meanwhile is kept);
//! - a deleted file is not recreated; a symbolic link is never written through, nor replaced;
//! - the temporary file is removed unless the process is killed outright, in which case a
//!   hidden `.ctfix-*.tmp` file (never read as Terraform) may remain beside the original.
//!
//! Not preserved: extended attributes and ACLs of the original (the file is a new inode), and
//! hard links (a file with several links is therefore refused).

use std::fs::{File, Metadata};
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::model::FileError;

/// Set by [`interrupt`]: no write may start or finish any more.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// How many writes are between their first step and their rename.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Stops writing, for a Ctrl-C / SIGTERM handler: a write in progress backs out before its
/// rename (its temporary file is removed, the original untouched) and every later write is
/// refused with an error, so the run ends normally, reporting which files were written.
///
/// Returns `true` when no write is in progress; the handler may then end the process at once
/// without leaving anything behind (a write that starts afterwards sees the flag first).
pub fn interrupt() -> bool {
    INTERRUPTED.store(true, Ordering::SeqCst);
    IN_FLIGHT.load(Ordering::SeqCst) == 0
}

/// Whether [`interrupt`] was called.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Counts a write as in flight for its lifetime; refuses to start after an interrupt.
struct InFlight;

impl InFlight {
    fn enter(path: &Path) -> Result<InFlight, FileError> {
        IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
        progress::STARTED.store(true, Ordering::SeqCst);
        let guard = InFlight;
        check_interrupt(path)?;
        Ok(guard)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
}

fn check_interrupt(path: &Path) -> Result<(), FileError> {
    if interrupted() {
        Err(FileError::new(
            path,
            "not written: ctfix was interrupted; the file was left untouched (run ctfix again)",
        ))
    } else {
        Ok(())
    }
}

/// Replaces `path`'s content with `after`, provided it still equals `before`.
///
/// Refuses symbolic links (the link's target may lie outside the tree), files with several
/// hard links, read-only files, and files that changed or disappeared since they were read.
/// On any failure the original file is untouched and the error says what to do.
pub fn write_atomically(path: &Path, before: &[u8], after: &[u8]) -> Result<(), FileError> {
    write_atomically_with(path, before, after, &mut |file, bytes| {
        file.write_all(bytes)
    })
}

/// [`write_atomically`] with the step that writes the temporary file supplied by the caller:
/// the seam fault-injection tests use to simulate a full disk, a short write, an interrupt, or
/// the file changing while it is written.
#[doc(hidden)]
pub fn write_atomically_with(
    path: &Path,
    before: &[u8],
    after: &[u8],
    write_temp: &mut dyn FnMut(&mut File, &[u8]) -> io::Result<()>,
) -> Result<(), FileError> {
    let untouched =
        |what: String| FileError::new(path, format!("{what}; the file was left untouched"));
    let in_flight = InFlight::enter(path)?;
    let original = inspect(path)?;
    check_unchanged(path, &original, before)?;

    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut temp = tempfile::Builder::new()
        .prefix(".ctfix-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| {
            untouched(format!(
                "cannot create a temporary file in {}: {e}{}",
                dir.display(),
                hint(&e, "make the directory writable")
            ))
        })?;
    write_temp(temp.as_file_mut(), after)
        .and_then(|()| temp.as_file().sync_all())
        .map_err(|e| {
            untouched(format!(
                "cannot write the temporary file: {e}{}",
                hint(&e, "check the disk")
            ))
        })?;
    keep_metadata(temp.as_file(), &original).map_err(|e| {
        untouched(format!(
            "cannot give the new file the original's permissions and owner: {e}"
        ))
    })?;

    // The last look before the rename: the window in which an edit could be lost is now only
    // the rename itself.
    let now = inspect(path)?;
    if !same_file(&original, &now) {
        return Err(changed(path));
    }
    check_unchanged(path, &now, before)?;
    progress::pause_for_tests("before-rename", path);
    check_interrupt(path)?;

    temp.persist(path).map_err(|e| {
        untouched(format!(
            "cannot replace the file: {}{}",
            e.error,
            hint(
                &e.error,
                "is the file or its directory immutable (`lsattr`)?"
            )
        ))
    })?;
    // Make the rename itself durable; the data already is. Failing here changes nothing the
    // user could act on, so it is not an error.
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    progress::WRITTEN.fetch_add(1, Ordering::SeqCst);
    drop(in_flight);
    progress::pause_for_tests("after-write", path);
    Ok(())
}

/// The file's metadata, refusing what ctfix must not replace.
fn inspect(path: &Path) -> Result<Metadata, FileError> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(FileError::new(
                path,
                "was deleted since ctfix read it; ctfix did not recreate it (restore it and run ctfix again)",
            ))
        }
        Err(e) => {
            return Err(FileError::new(
                path,
                format!("cannot stat file: {e}; the file was left untouched"),
            ))
        }
    };
    if metadata.file_type().is_symlink() {
        let target = std::fs::read_link(path)
            .map(|t| format!(" to {}", t.display()))
            .unwrap_or_default();
        return Err(FileError::new(
            path,
            format!(
                "is a symbolic link{target}; ctfix never writes through links, whose target may lie outside the tree, and left it untouched (run ctfix on the file it points to)"
            ),
        ));
    }
    if !metadata.is_file() {
        return Err(FileError::new(
            path,
            "is no longer a regular file; the path was left untouched",
        ));
    }
    if metadata.permissions().readonly() {
        return Err(FileError::new(
            path,
            "is read-only; ctfix does not override that and left it untouched (make it writable, e.g. `chmod u+w`, and run ctfix again)",
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if metadata.nlink() > 1 {
            return Err(FileError::new(
                path,
                format!(
                    "has {} hard links; replacing it would leave the other links with the old text, so ctfix left it untouched (apply the diff by hand)",
                    metadata.nlink()
                ),
            ));
        }
    }
    Ok(metadata)
}

/// Fails unless `path` holds exactly `before`.
fn check_unchanged(path: &Path, metadata: &Metadata, before: &[u8]) -> Result<(), FileError> {
    if metadata.len() != before.len() as u64 {
        return Err(changed(path));
    }
    let mut current = Vec::with_capacity(before.len());
    File::open(path)
        .and_then(|file| file.take(before.len() as u64 + 1).read_to_end(&mut current))
        .map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                FileError::new(
                    path,
                    "was deleted since ctfix read it; ctfix did not recreate it (restore it and run ctfix again)",
                )
            } else {
                FileError::new(
                    path,
                    format!("cannot re-read file: {e}; the file was left untouched"),
                )
            }
        })?;
    if current != before {
        return Err(changed(path));
    }
    Ok(())
}

fn changed(path: &Path) -> FileError {
    FileError::new(
        path,
        "changed on disk since ctfix read it; the file was left untouched, with that change (run ctfix again)",
    )
}

/// Whether two looks at a path saw the same file (not a replacement with the same content).
fn same_file(a: &Metadata, b: &Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        a.dev() == b.dev()
            && a.ino() == b.ino()
            && a.len() == b.len()
            && a.mtime() == b.mtime()
            && a.mtime_nsec() == b.mtime_nsec()
    }
    #[cfg(not(unix))]
    {
        a.len() == b.len() && a.modified().ok() == b.modified().ok()
    }
}

/// Gives the temporary file the original's permissions and, on Unix, its owner and group, so
/// that replacing the file changes nothing but its content.
fn keep_metadata(temp: &File, original: &Metadata) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let current = temp.metadata()?;
        if (current.uid(), current.gid()) != (original.uid(), original.gid()) {
            std::os::unix::fs::fchown(temp, Some(original.uid()), Some(original.gid()))?;
        }
    }
    temp.set_permissions(original.permissions())
}

/// What to do about an I/O error, as a sentence fragment starting with `" ("`.
fn hint(error: &io::Error, otherwise: &str) -> String {
    let full =
        error.kind() == io::ErrorKind::StorageFull || error.kind() == io::ErrorKind::QuotaExceeded;
    if full {
        " (the disk is full or over quota: free some space and run ctfix again)".to_owned()
    } else {
        format!(" ({otherwise}, then run ctfix again)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_keeps_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("main.tf");
        std::fs::write(&path, b"old").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        }
        write_atomically(&path, b"old", b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o640);
        }
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file is left behind");
    }

    #[test]
    fn refuses_a_file_that_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("main.tf");
        std::fs::write(&path, b"edited by someone else").unwrap();
        let error = write_atomically(&path, b"old", b"new").unwrap_err();
        assert!(error.message.contains("changed on disk"));
        assert_eq!(std::fs::read(&path).unwrap(), b"edited by someone else");
    }

    #[test]
    fn refuses_a_file_changed_with_the_same_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("main.tf");
        std::fs::write(&path, b"new").unwrap();
        let error = write_atomically(&path, b"old", b"fix").unwrap_err();
        assert!(error.message.contains("changed on disk"));
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
    }

    #[test]
    fn a_full_disk_leaves_the_file_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("main.tf");
        std::fs::write(&path, b"old").unwrap();
        let error = write_atomically_with(&path, b"old", b"new text", &mut |file, bytes| {
            file.write_all(&bytes[..3])?;
            Err(io::Error::from(io::ErrorKind::StorageFull))
        })
        .unwrap_err();
        assert!(
            error.message.contains("the disk is full"),
            "{}",
            error.message
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn refuses_hard_links_and_read_only_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("main.tf");
        std::fs::write(&path, b"old").unwrap();
        std::fs::hard_link(&path, dir.path().join("other.tf")).unwrap();
        let error = write_atomically(&path, b"old", b"new").unwrap_err();
        assert!(error.message.contains("2 hard links"), "{}", error.message);
        std::fs::remove_file(dir.path().join("other.tf")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
        let error = write_atomically(&path, b"old", b"new").unwrap_err();
        assert!(error.message.contains("read-only"), "{}", error.message);
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
    }
}

/// Whether any write has started ([`writes_started`]) and how many files were written
/// ([`files_written`]): what the binary needs to tell "interrupted before anything was
/// written" (exit 130) from "interrupted after writing" (the run ends normally).
mod progress {
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, AtomicUsize};

    /// Set when the first write starts (before it checks for an interrupt).
    pub(super) static STARTED: AtomicBool = AtomicBool::new(false);
    /// Files replaced so far.
    pub(super) static WRITTEN: AtomicUsize = AtomicUsize::new(0);

    /// Test hook: `CTFIX_TEST_PAUSE_WRITE=<step>:<path suffix>:<milliseconds>` sleeps at
    /// `step` (`before-rename`: the temporary file is written, the rename not yet done;
    /// `after-write`: the file is written and no longer in flight) of the write of a path
    /// ending with the suffix, so that the interrupt tests can land a signal there.
    pub(super) fn pause_for_tests(step: &str, path: &Path) {
        let Some(value) = std::env::var_os("CTFIX_TEST_PAUSE_WRITE") else {
            return;
        };
        let value = value.to_string_lossy();
        let mut parts = value.splitn(3, ':');
        let (Some(at), Some(suffix), Some(millis)) = (parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        if at == step && path.ends_with(suffix) {
            if let Ok(millis) = millis.parse() {
                std::thread::sleep(std::time::Duration::from_millis(millis));
            }
        }
    }
}

/// Whether a write has started in this process (it may have been refused or backed out).
pub fn writes_started() -> bool {
    progress::STARTED.load(Ordering::SeqCst)
}

/// How many files this process has written.
pub fn files_written() -> usize {
    progress::WRITTEN.load(Ordering::SeqCst)
}
