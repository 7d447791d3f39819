//! Writing fixed files: atomically (a temporary file in the same directory, then a rename),
//! with the original permissions, and only if the file still holds what was read.

use std::io::Write;
use std::path::Path;

use crate::model::FileError;

/// Replaces `path`'s content with `after`, provided it still equals `before`.
///
/// Refuses symbolic links (the link's target may lie outside the tree) and files that changed
/// since they were read. On any failure the original file is untouched.
pub fn write_atomically(path: &Path, before: &[u8], after: &[u8]) -> Result<(), FileError> {
    let fail = |what: &str, error: &dyn std::fmt::Display| {
        FileError::new(
            path,
            format!("{what}: {error}; the file was left untouched"),
        )
    };
    let link = std::fs::symlink_metadata(path).map_err(|e| fail("cannot stat file", &e))?;
    if link.file_type().is_symlink() {
        return Err(FileError::new(
            path,
            "is a symbolic link; ctfix does not write through links (fix the file it points to)",
        ));
    }
    let current = std::fs::read(path).map_err(|e| fail("cannot re-read file", &e))?;
    if current != before {
        return Err(FileError::new(
            path,
            "changed on disk since ctfix read it; the file was left untouched (run ctfix again)",
        ));
    }
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut temp = tempfile::Builder::new()
        .prefix(".ctfix-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| fail("cannot create a temporary file beside it", &e))?;
    temp.write_all(after)
        .and_then(|()| temp.as_file().sync_all())
        .map_err(|e| fail("cannot write the temporary file", &e))?;
    std::fs::set_permissions(temp.path(), link.permissions())
        .map_err(|e| fail("cannot copy permissions", &e))?;
    temp.persist(path)
        .map_err(|e| fail("cannot replace the file", &e.error))?;
    Ok(())
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
}
