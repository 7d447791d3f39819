//! Stage 1: find the Terraform files under the given paths and group them by module
//! (directory), because everything that needs context — labels in use, data sources, keys,
//! variables — is module-wide in Terraform.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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
        let walked = walk(root);
        errors.extend(walked.errors);
        for found in walked.modules {
            match modules.entry(found.dir.clone()) {
                Entry::Vacant(slot) => {
                    slot.insert(found);
                }
                Entry::Occupied(mut slot) => {
                    let module = slot.get_mut();
                    module.files.extend(found.files);
                    module.json_files.extend(found.json_files);
                    module.targets.extend(found.targets);
                }
            }
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

/// Walks the directory `root` in parallel: every directory is listed by a rayon task that
/// spawns one task per subdirectory, so both listing and the per-directory work spread over
/// all cores. Each directory's Terraform files become one [`ModuleDir`]; hidden
/// subdirectories are skipped and links to directories are not followed.
fn walk(root: &Path) -> Discovery {
    let found = Mutex::new(Discovery::default());
    rayon::scope(|scope| walk_dir(scope, root.to_path_buf(), &found));
    found
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn walk_dir<'s>(scope: &rayon::Scope<'s>, dir: PathBuf, found: &'s Mutex<Discovery>) {
    let record_error = |path: &Path, error: std::io::Error| {
        let error = FileError::new(path, format!("cannot walk: {error}"));
        found
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .errors
            .push(error);
    };
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(error) => return record_error(&dir, error),
    };
    let mut module: Option<ModuleDir> = None;
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) => {
                record_error(&dir, error);
                continue;
            }
        };
        let path = dir.join(entry.file_name());
        // On Linux and macOS the type comes with the directory entry: no `stat` per file.
        let file_type = match entry.file_type() {
            Ok(file_type) => file_type,
            Err(error) => {
                record_error(&path, error);
                continue;
            }
        };
        if file_type.is_dir() {
            if !entry.file_name().to_str().is_some_and(is_skipped_dir) {
                scope.spawn(move |scope| walk_dir(scope, path, found));
            }
            continue;
        }
        let Some(kind) = file_kind(&path) else {
            continue;
        };
        let is_file = file_type.is_file()
            || (file_type.is_symlink() && path.metadata().is_ok_and(|m| m.is_file()));
        if !is_file {
            continue;
        }
        let module = module.get_or_insert_with(|| ModuleDir {
            dir: parent_dir(&path),
            ..ModuleDir::default()
        });
        match kind {
            FileKind::Native => module.files.push(path.clone()),
            FileKind::Json => module.json_files.push(path.clone()),
        }
        module.targets.insert(path);
    }
    if let Some(module) = module {
        found
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .modules
            .push(module);
    }
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

    /// The parallel walk must find what a sequential one finds, in the same order.
    #[test]
    fn walk_groups_by_directory_sorted_and_skips_hidden_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for file in [
            "b/main.tf",
            "b/variables.tf",
            "a/z.tf",
            "a/a.tf",
            "a/keys.tf.json",
            "a/nested/deep/main.tf",
            "a/notes.md",
            ".terraform/modules/vendored/main.tf",
            "a/.hidden/main.tf",
            "root.tf",
        ] {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, "").unwrap();
        }
        let found = discover(&[root.to_path_buf()]);
        assert!(found.errors.is_empty(), "{:?}", found.errors);
        let dirs: Vec<&Path> = found.modules.iter().map(|m| m.dir.as_path()).collect();
        assert_eq!(
            dirs,
            [
                root.to_path_buf(),
                root.join("a"),
                root.join("a/nested/deep"),
                root.join("b")
            ]
        );
        let a = &found.modules[1];
        assert_eq!(a.files, [root.join("a/a.tf"), root.join("a/z.tf")]);
        assert_eq!(a.json_files, [root.join("a/keys.tf.json")]);
        assert_eq!(a.targets.len(), 3);
    }

    #[test]
    fn overlapping_roots_merge_into_one_module() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("m")).unwrap();
        std::fs::write(root.join("m/main.tf"), "").unwrap();
        std::fs::write(root.join("m/other.tf"), "").unwrap();
        let found = discover(&[root.to_path_buf(), root.join("m"), root.join("m/main.tf")]);
        assert_eq!(found.modules.len(), 1);
        assert_eq!(
            found.modules[0].files,
            [root.join("m/main.tf"), root.join("m/other.tf")]
        );
    }

    #[cfg(unix)]
    #[test]
    fn links_to_files_are_listed_links_to_dirs_are_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("real")).unwrap();
        std::fs::write(root.join("real/main.tf"), "").unwrap();
        std::os::unix::fs::symlink(root.join("real/main.tf"), root.join("real/linked.tf"))
            .unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("loop")).unwrap();
        let found = discover(&[root.to_path_buf()]);
        assert_eq!(found.modules.len(), 1);
        assert_eq!(
            found.modules[0].files,
            [root.join("real/linked.tf"), root.join("real/main.tf")]
        );
    }
}
