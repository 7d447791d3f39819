//! Writing fixed files: atomically (a temporary file in the same directory, synced, then
//! renamed over the original), with the original permissions and owner, and only if the file
//! still holds what was read; the files of one module's change set all or none
//! ([`write_change_set`]).
//!
//! What a user can rely on, whatever happens during a write (a full disk, a read-only or
//! immutable file or directory, a file edited or deleted meanwhile, Ctrl-C, a crash):
//! - the file holds either exactly what ctfix read or exactly the fixed text, never a mix;
//! - the files of a change set all hold the fix, or all hold what ctfix read (a crash or
//!   `kill -9` between two renames is the exception: see the README);
//! - a file that changed since ctfix read it is left alone (the edit made meanwhile is kept);
//! - a deleted file is not recreated; a symbolic link is never written through, nor replaced;
//! - the temporary file is removed unless the process is killed outright, in which case a
//!   hidden `.ctfix-*.tmp` file (never read as Terraform) may remain beside the original.
//!
//! Not preserved: extended attributes and ACLs of the original (the file is a new inode), and
//! hard links (a file with several links is therefore refused).

use std::fs::{File, Metadata};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

use tempfile::NamedTempFile;

use crate::model::FileError;

/// Set by [`interrupt`]: no write may start or finish any more.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// How many writes are between their first step and their rename.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Stops writing, for a Ctrl-C / SIGTERM handler: a change set in progress backs out (before
/// its first rename, its temporary files are removed; after it, the files already renamed get
/// their originals back) and every later one is refused with an error, so the run ends
/// normally, reporting which files were written.
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
    write_change_set_with(
        &[FileWrite {
            path,
            before,
            after,
        }],
        write_temp,
    )
    .map_err(|failure| failure.cause)
}

/// One file of a change set: what ctfix read from `path` and what it is to hold.
#[derive(Debug, Clone, Copy)]
pub struct FileWrite<'a> {
    /// The file.
    pub path: &'a Path,
    /// The bytes ctfix read (and planned from).
    pub before: &'a [u8],
    /// The bytes to write.
    pub after: &'a [u8],
}

/// Why a change set was not written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotWritten {
    /// What failed, on which file.
    pub cause: FileError,
    /// Files that had already been replaced when the failure came, and were put back: they
    /// hold exactly what they held before, with the same permissions and owner.
    pub restored: Vec<PathBuf>,
    /// Files that hold the fix because putting the original back failed too; each error says
    /// where the original is kept. Empty unless something else interfered (rare).
    pub unrestored: Vec<FileError>,
}

/// Writes a change set — the files one module's fixes change, which only make sense together
/// — all or nothing: whatever happens, either every file holds its new text, or every file
/// holds exactly what ctfix read.
///
/// Everything that can be known beforehand is checked for every file before the first rename
/// (each file is still what was read, writable, a single link; its directory takes a new
/// file); then every new file is written and synced beside its target, and, for every file
/// but the last, a copy of the original is too (so that restoring it needs no disk space);
/// then the files are renamed into place. A failure or an interrupt ([`interrupt`]) after
/// the first rename renames the saved originals back.
///
/// Test hooks (read from the environment, set only by ctfix's own tests):
/// `CTFIX_TEST_FAIL_RENAME=N` makes the N-th rename of every change set fail;
/// `CTFIX_TEST_PAUSE_AFTER_RENAME=FILE` makes a change set of several files create FILE after
/// its first rename and wait (up to 30 s) for an interrupt.
pub fn write_change_set(files: &[FileWrite<'_>]) -> Result<(), Box<NotWritten>> {
    write_change_set_with(files, &mut |file, bytes| file.write_all(bytes))
}

/// [`write_change_set`] with the step that writes each temporary file supplied by the caller
/// (the fault-injection seam of [`write_atomically_with`]).
#[doc(hidden)]
pub fn write_change_set_with(
    files: &[FileWrite<'_>],
    write_temp: &mut dyn FnMut(&mut File, &[u8]) -> io::Result<()>,
) -> Result<(), Box<NotWritten>> {
    let Some(first) = files.first() else {
        return Ok(());
    };
    let fail = |cause: FileError| {
        Box::new(NotWritten {
            cause,
            restored: Vec::new(),
            unrestored: Vec::new(),
        })
    };
    let in_flight = InFlight::enter(first.path).map_err(fail)?;
    // Look at every file before writing anything.
    let mut originals = Vec::with_capacity(files.len());
    for file in files {
        let original = inspect(file.path).map_err(fail)?;
        check_unchanged(file.path, &original, file.before).map_err(fail)?;
        originals.push(original);
    }
    // Stage: the new texts, and copies of the originals to restore from.
    let mut staged = Vec::with_capacity(files.len());
    for (i, (file, original)) in files.iter().zip(&originals).enumerate() {
        let temp = stage(file.path, original, file.after, write_temp).map_err(fail)?;
        let backup = if i + 1 < files.len() {
            let mut copy = |f: &mut File, bytes: &[u8]| f.write_all(bytes);
            Some(
                stage(file.path, original, file.before, &mut copy).map_err(|e| {
                    fail(FileError::new(
                        e.path,
                        e.message.replace(
                            "the temporary file",
                            "a copy of the original to restore from",
                        ),
                    ))
                })?,
            )
        } else {
            None
        };
        staged.push((temp, backup));
    }
    // The last look before the renames: the window in which an edit could be lost is now only
    // the renames themselves.
    for (file, original) in files.iter().zip(&originals) {
        let now = inspect(file.path).map_err(fail)?;
        if !same_file(original, &now) {
            return Err(fail(changed(file.path)));
        }
        check_unchanged(file.path, &now, file.before).map_err(fail)?;
    }
    check_interrupt(first.path).map_err(fail)?;

    let mut renamed: Vec<(&Path, NamedTempFile)> = Vec::new();
    let count = files.len();
    for (i, (file, (temp, backup))) in files.iter().zip(staged).enumerate() {
        progress::pause_for_tests("before-rename", file.path);
        let result = check_interrupt(file.path).and_then(|()| {
            let injected = test_hooks().fail_rename.filter(|&n| n == i + 1).map(|n| {
                io::Error::other(format!(
                    "rename {n} of the change set failed (injected by CTFIX_TEST_FAIL_RENAME)"
                ))
            });
            match injected {
                Some(error) => Err(error),
                None => temp.persist(file.path).map(drop).map_err(|e| e.error),
            }
            .map_err(|e| {
                FileError::new(
                    file.path,
                    format!(
                        "cannot replace the file: {e}{}; the file was left untouched",
                        hint(&e, "is the file or its directory immutable (`lsattr`)?")
                    ),
                )
            })
        });
        if let Err(cause) = result {
            return Err(restore(cause, renamed));
        }
        if let Some(backup) = backup {
            renamed.push((file.path, backup));
        }
        if i + 1 < count {
            if let Some(marker) = &test_hooks().pause_after_rename {
                pause_for_interrupt(marker);
            }
        }
    }
    // Make the renames durable; the data already is. Failing here changes nothing the user
    // could act on, so it is not an error.
    let mut dirs: Vec<&Path> = files.iter().map(|f| dir_of(f.path)).collect();
    dirs.sort();
    dirs.dedup();
    for dir in dirs {
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    progress::WRITTEN.fetch_add(files.len(), Ordering::SeqCst);
    drop(in_flight);
    for file in files {
        progress::pause_for_tests("after-write", file.path);
    }
    Ok(())
}

/// Writes `bytes` to a new hidden file beside `path`, synced and with `original`'s
/// permissions and owner, ready to be renamed over `path`.
fn stage(
    path: &Path,
    original: &Metadata,
    bytes: &[u8],
    write: &mut dyn FnMut(&mut File, &[u8]) -> io::Result<()>,
) -> Result<NamedTempFile, FileError> {
    let untouched =
        |what: String| FileError::new(path, format!("{what}; the file was left untouched"));
    let dir = dir_of(path);
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
    write(temp.as_file_mut(), bytes)
        .and_then(|()| temp.as_file().sync_all())
        .map_err(|e| {
            untouched(format!(
                "cannot write the temporary file: {e}{}",
                hint(&e, "check the disk")
            ))
        })?;
    keep_metadata(temp.as_file(), original).map_err(|e| {
        untouched(format!(
            "cannot give the new file the original's permissions and owner: {e}"
        ))
    })?;
    Ok(temp)
}

/// Puts back the originals of the files already renamed (last first) after `cause` stopped
/// a change set.
fn restore(cause: FileError, renamed: Vec<(&Path, NamedTempFile)>) -> Box<NotWritten> {
    let mut failure = NotWritten {
        cause,
        restored: Vec::new(),
        unrestored: Vec::new(),
    };
    for (path, backup) in renamed.into_iter().rev() {
        match backup.persist(path) {
            Ok(_) => failure.restored.push(path.to_path_buf()),
            Err(e) => {
                let kept = e.file.into_temp_path().keep();
                let saved = match kept {
                    Ok(saved) => format!("the original is kept in {}", saved.display()),
                    Err(_) => "the original could not be kept either".to_owned(),
                };
                failure.unrestored.push(FileError::new(
                    path,
                    format!(
                        "holds the fix, but ctfix could not put the original back ({}); {saved}: move it over this file to undo",
                        e.error
                    ),
                ));
            }
        }
    }
    failure.restored.reverse();
    let failure = Box::new(failure);
    let mut dirs: Vec<&Path> = failure.restored.iter().map(|p| dir_of(p)).collect();
    dirs.sort();
    dirs.dedup();
    for dir in dirs {
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    failure
}

/// The directory holding `path`.
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// What ctfix's own tests ask of [`write_change_set`] through the environment.
struct TestHooks {
    /// `CTFIX_TEST_FAIL_RENAME`: the 1-based rename of each change set that fails.
    fail_rename: Option<usize>,
    /// `CTFIX_TEST_PAUSE_AFTER_RENAME`: the file to create when pausing after a rename.
    pause_after_rename: Option<PathBuf>,
}

fn test_hooks() -> &'static TestHooks {
    static HOOKS: OnceLock<TestHooks> = OnceLock::new();
    HOOKS.get_or_init(|| TestHooks {
        fail_rename: std::env::var("CTFIX_TEST_FAIL_RENAME")
            .ok()
            .and_then(|n| n.parse().ok()),
        pause_after_rename: std::env::var_os("CTFIX_TEST_PAUSE_AFTER_RENAME").map(PathBuf::from),
    })
}

/// Test hook: tells the test (by creating `marker`) that a change set is between two
/// renames, then waits for the interrupt the test sends.
fn pause_for_interrupt(marker: &Path) {
    let _ = File::create(marker);
    let start = std::time::Instant::now();
    while !interrupted() && start.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
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
    fn a_bare_file_name_is_in_the_current_directory() {
        assert_eq!(dir_of(Path::new("main.tf")), Path::new("."));
        assert_eq!(dir_of(Path::new("m/main.tf")), Path::new("m"));
    }

    /// The re-read compares one byte more than expected: a file that grew between the
    /// `stat` and the read is not taken for unchanged.
    #[test]
    fn a_file_that_grew_after_its_stat_is_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("main.tf");
        let before = dir.path().join("before.tf");
        std::fs::write(&path, b"abcX").unwrap();
        std::fs::write(&before, b"abc").unwrap();
        let stat_before_it_grew = std::fs::metadata(&before).unwrap();
        let error = check_unchanged(&path, &stat_before_it_grew, b"abc").unwrap_err();
        assert!(error.message.contains("changed"), "{}", error.message);
    }

    #[test]
    fn a_file_deleted_after_its_stat_is_reported_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let before = dir.path().join("before.tf");
        std::fs::write(&before, b"abc").unwrap();
        let stat = std::fs::metadata(&before).unwrap();
        let error = check_unchanged(&dir.path().join("gone.tf"), &stat, b"abc").unwrap_err();
        assert!(error.message.contains("was deleted"), "{}", error.message);
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

    #[test]
    fn a_change_set_is_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.tf"), dir.path().join("b.tf"));
        std::fs::write(&a, b"a").unwrap();
        std::fs::write(&b, b"b").unwrap();
        let files = [
            FileWrite {
                path: &a,
                before: b"a",
                after: b"A",
            },
            FileWrite {
                path: &b,
                before: b"b",
                after: b"B",
            },
        ];
        write_change_set(&files).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), b"A");
        assert_eq!(std::fs::read(&b).unwrap(), b"B");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn a_change_set_with_a_file_changed_on_disk_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.tf"), dir.path().join("b.tf"));
        std::fs::write(&a, b"a").unwrap();
        std::fs::write(&b, b"edited").unwrap();
        let files = [
            FileWrite {
                path: &a,
                before: b"a",
                after: b"A",
            },
            FileWrite {
                path: &b,
                before: b"b",
                after: b"B",
            },
        ];
        let failure = write_change_set(&files).unwrap_err();
        assert_eq!(failure.cause.path, b);
        assert!(failure.cause.message.contains("changed on disk"));
        assert_eq!(std::fs::read(&a).unwrap(), b"a");
        assert_eq!(std::fs::read(&b).unwrap(), b"edited");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn a_failed_temporary_file_of_the_last_file_leaves_the_first_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.tf"), dir.path().join("b.tf"));
        std::fs::write(&a, b"a").unwrap();
        std::fs::write(&b, b"b").unwrap();
        let files = [
            FileWrite {
                path: &a,
                before: b"a",
                after: b"A",
            },
            FileWrite {
                path: &b,
                before: b"b",
                after: b"B",
            },
        ];
        let failure = write_change_set_with(&files, &mut |file, bytes| {
            if bytes == b"B" {
                return Err(io::Error::from(io::ErrorKind::StorageFull));
            }
            file.write_all(bytes)
        })
        .unwrap_err();
        assert_eq!(failure.cause.path, b);
        assert!(failure.restored.is_empty() && failure.unrestored.is_empty());
        assert_eq!(std::fs::read(&a).unwrap(), b"a");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
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
