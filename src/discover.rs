//! Stage 1: find the Terraform files under the given paths and group them by module
//! (directory), because everything that needs context — labels in use, data sources, keys,
//! variables — is module-wide in Terraform.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use crate::model::FileError;

/// The Terraform files of one directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleDir {
    /// The directory.
    pub dir: PathBuf,
    /// Every `*.tf` file of the directory, sorted: the module's context.
    pub files: Vec<PathBuf>,
    /// Every `*.tf.json` file of the directory, sorted.
    pub json_files: Vec<PathBuf>,
    /// The files to check and fix (all of `files` and `json_files` when the directory was
    /// walked; only the named ones when files were named on the command line).
    pub targets: BTreeSet<PathBuf>,
}

/// What the walk found.
#[derive(Debug, Default)]
pub struct Discovery {
    /// Modules sorted by directory.
    pub modules: Vec<ModuleDir>,
    /// Paths that do not exist or could not be read.
    pub errors: Vec<FileError>,
}

/// What kind of Terraform file a path names, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Native syntax, `*.tf`.
    Native,
    /// JSON syntax, `*.tf.json`.
    Json,
}

/// Classifies a path by its name.
pub fn file_kind(path: &Path) -> Option<FileKind> {
    let name = path.file_name()?.to_str()?;
    if name.ends_with(".tf.json") {
        Some(FileKind::Json)
    } else if name.ends_with(".tf") {
        Some(FileKind::Native)
    } else {
        None
    }
}

/// Directories Terraform itself never reads as part of the module, plus VCS metadata.
fn is_skipped_dir(name: &str) -> bool {
    name.starts_with('.') && name != "." && name != ".."
}

/// Walks `paths` (files or directories) and groups the Terraform files by directory.
///
/// Hidden directories (`.terraform/`, `.git/`, …) are skipped; symbolic links to directories
/// are not followed (no loops, no leaving the tree); links to files are listed as files.
pub fn discover(paths: &[PathBuf]) -> Discovery {
    let mut modules: BTreeMap<PathBuf, ModuleDir> = BTreeMap::new();
    let mut errors = Vec::new();
    for root in paths {
        let metadata = match std::fs::metadata(root) {
            Ok(metadata) => metadata,
            Err(error) => {
                errors.push(FileError::new(root, format!("cannot read path: {error}")));
                continue;
            }
        };
        if metadata.is_file() {
            if file_kind(root).is_none() {
                errors.push(FileError::new(
                    root,
                    "not a Terraform file (expected *.tf or *.tf.json)",
                ));
                continue;
            }
            let dir = parent_dir(root);
            let module = modules.entry(dir.clone()).or_insert_with(|| ModuleDir {
                dir: dir.clone(),
                ..ModuleDir::default()
            });
            module.targets.insert(root.clone());
            if let Err(error) = list_module_files(module) {
                errors.push(FileError::new(
                    &dir,
                    format!("cannot list directory: {error}"),
                ));
            }
            continue;
        }
        let walker = WalkDir::new(root)
            .follow_links(false)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|entry| {
                entry.depth() == 0
                    || !entry.file_type().is_dir()
                    || !entry.file_name().to_str().is_some_and(is_skipped_dir)
            });
        for entry in walker {
            let entry = match entry {
                Ok(entry) => entry,
                Err(error) => {
                    let path = error.path().unwrap_or(root).to_path_buf();
                    errors.push(FileError::new(path, format!("cannot walk: {error}")));
                    continue;
                }
            };
            let path = entry.path();
            let Some(kind) = file_kind(path) else {
                continue;
            };
            let is_file = entry.file_type().is_file()
                || (entry.file_type().is_symlink() && path.metadata().is_ok_and(|m| m.is_file()));
            if !is_file {
                continue;
            }
            let dir = parent_dir(path);
            let module = modules.entry(dir.clone()).or_insert_with(|| ModuleDir {
                dir,
                ..ModuleDir::default()
            });
            match kind {
                FileKind::Native => module.files.push(path.to_path_buf()),
                FileKind::Json => module.json_files.push(path.to_path_buf()),
            }
            module.targets.insert(path.to_path_buf());
        }
    }
    let modules = modules
        .into_values()
        .map(|mut module| {
            module.files.sort();
            module.files.dedup();
            module.json_files.sort();
            module.json_files.dedup();
            module
        })
        .collect();
    Discovery { modules, errors }
}

/// The directory a file belongs to, `.` for a bare file name.
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Fills `files` and `json_files` from the directory listing (a named file still needs its
/// module's context).
fn list_module_files(module: &mut ModuleDir) -> std::io::Result<()> {
    for entry in std::fs::read_dir(&module.dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let path = if module.dir == Path::new(".") {
            PathBuf::from(&name)
        } else {
            module.dir.join(&name)
        };
        if !path.metadata().is_ok_and(|m| m.is_file()) {
            continue;
        }
        match file_kind(&path) {
            Some(FileKind::Native) => module.files.push(path),
            Some(FileKind::Json) => module.json_files.push(path),
            None => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_name() {
        assert_eq!(file_kind(Path::new("a/main.tf")), Some(FileKind::Native));
        assert_eq!(file_kind(Path::new("a/main.tf.json")), Some(FileKind::Json));
        assert_eq!(file_kind(Path::new("a/terraform.tfvars")), None);
        assert_eq!(file_kind(Path::new("a/main.tfx")), None);
    }

    #[test]
    fn hidden_dirs_are_skipped_but_not_dot() {
        assert!(is_skipped_dir(".terraform"));
        assert!(is_skipped_dir(".git"));
        assert!(!is_skipped_dir("."));
        assert!(!is_skipped_dir("modules"));
    }
}
