//! Stage 1: find the Terraform files under the given paths and group them by module
//! (directory), because everything that needs context — labels in use, data sources, keys,
//! variables — is module-wide in Terraform.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rayon::prelude::*;

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
    /// Whether the directory holds `.terraform/` (downloaded modules), when the walk saw its
    /// entries (`None`: not known, look). Spares a failed `open` per calling module.
    pub dot_terraform: Option<bool>,
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
            // Spelled as the directory listing spells the module's files (`./main.tf` is
            // listed as `main.tf`), or the target matches none of them.
            let target = match root.file_name() {
                Some(name) if dir == Path::new(".") => PathBuf::from(name),
                _ => root.clone(),
            };
            let mut found = ModuleDir {
                dir: dir.clone(),
                targets: BTreeSet::from([target]),
                ..ModuleDir::default()
            };
            if let Err(error) = list_module_files(&mut found) {
                errors.push(FileError::new(
                    &dir,
                    format!("cannot list directory: {error}"),
                ));
            }
            merge_module(&mut modules, found);
            continue;
        }
        let walked = walk(root);
        errors.extend(walked.errors);
        for found in walked.modules {
            merge_module(&mut modules, found);
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

/// Adds a module found under one path to those found so far, keyed by its directory's
/// canonical path: `. live` or `live ./live` name the same modules twice, which must be
/// checked once. The first spelling of the directory is kept; files and targets named
/// again are mapped onto it by file name.
fn merge_module(modules: &mut BTreeMap<PathBuf, ModuleDir>, found: ModuleDir) {
    let key = std::fs::canonicalize(&found.dir).unwrap_or_else(|_| found.dir.clone());
    match modules.entry(key) {
        Entry::Vacant(slot) => {
            slot.insert(found);
        }
        Entry::Occupied(mut slot) => {
            let module = slot.get_mut();
            let respell = |path: &PathBuf, known: &[PathBuf]| -> PathBuf {
                known
                    .iter()
                    .find(|k| k.file_name() == path.file_name())
                    .cloned()
                    .unwrap_or_else(|| path.clone())
            };
            let known: Vec<PathBuf> = module
                .files
                .iter()
                .chain(&module.json_files)
                .cloned()
                .collect();
            for target in &found.targets {
                module.targets.insert(respell(target, &known));
            }
            for file in found.files {
                if !known.iter().any(|k| k.file_name() == file.file_name()) {
                    module.files.push(file);
                }
            }
            for file in found.json_files {
                if !known.iter().any(|k| k.file_name() == file.file_name()) {
                    module.json_files.push(file);
                }
            }
        }
    }
}

/// Calls `visit` for every module under `paths` — the same modules [`discover`] returns — in
/// parallel and in no particular order, as the walk finds them; returns the errors met.
///
/// A single directory (the usual case) is streamed: each directory is listed by a rayon task
/// that spawns one task per subdirectory and then visits its own module, so listing, reading
/// and parsing overlap on all cores, and only the modules being visited are held in memory,
/// whatever the size of the tree. Several paths, or a file, are discovered first (they may
/// name the same module twice, which must be merged) and then visited in parallel.
pub fn visit_modules(paths: &[PathBuf], visit: &(dyn Fn(ModuleDir) + Sync)) -> Vec<FileError> {
    if let [root] = paths {
        if std::fs::metadata(root).is_ok_and(|m| m.is_dir()) {
            let errors = Mutex::new(Vec::new());
            rayon::scope(|scope| walk_dir(scope, root.clone(), visit, &errors));
            return sorted(errors);
        }
    }
    let discovery = discover(paths);
    discovery.modules.into_par_iter().for_each(visit);
    discovery.errors
}

/// Walks the directory `root` in parallel (see [`visit_modules`]) and collects its modules.
fn walk(root: &Path) -> Discovery {
    let modules = Mutex::new(Vec::new());
    let errors = Mutex::new(Vec::new());
    let collect = |module| lock(&modules).push(module);
    rayon::scope(|scope| walk_dir(scope, root.to_path_buf(), &collect, &errors));
    Discovery {
        modules: modules
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner()),
        errors: sorted(errors),
    }
}

/// The errors the walk's tasks met, in a deterministic order.
fn sorted(errors: Mutex<Vec<FileError>>) -> Vec<FileError> {
    let mut errors = errors
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    errors.sort_by(|a, b| (&a.path, &a.message).cmp(&(&b.path, &b.message)));
    errors
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Lists `dir`, spawns a task per subdirectory (hidden ones skipped, links not followed),
/// then hands the directory's Terraform files, sorted, to `visit` as one module.
fn walk_dir<'s>(
    scope: &rayon::Scope<'s>,
    dir: PathBuf,
    visit: &'s (dyn Fn(ModuleDir) + Sync),
    errors: &'s Mutex<Vec<FileError>>,
) {
    let record_error = |path: &Path, error: std::io::Error| {
        lock(errors).push(FileError::new(path, format!("cannot walk: {error}")));
    };
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(error) => return record_error(&dir, error),
    };
    let mut module: Option<ModuleDir> = None;
    let mut dot_terraform = false;
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
        if entry.file_name() == ".terraform" {
            dot_terraform = true;
        }
        if file_type.is_dir() {
            if !entry.file_name().to_str().is_some_and(is_skipped_dir) {
                scope.spawn(move |scope| walk_dir(scope, path, visit, errors));
            }
            continue;
        }
        let Some(kind) = file_kind(&path) else {
            continue;
        };
        let is_file = file_type.is_file()
            || (file_type.is_symlink() && path.metadata().is_ok_and(|m| m.is_file()));
        if !is_file {
            if file_type.is_symlink() && path.metadata().is_err() {
                lock(errors).push(FileError::new(
                    &path,
                    "is a symbolic link that cannot be followed (dangling, or a loop); ctfix skipped it",
                ));
            }
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
    if let Some(mut module) = module {
        module.files.sort();
        module.json_files.sort();
        module.dot_terraform = Some(dot_terraform);
        visit(module);
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

    /// Streaming visits exactly the modules `discover` returns, for one root or several.
    #[test]
    fn visit_modules_sees_what_discover_returns() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for i in 0..40 {
            let dir = root.join(format!("d{}/m{i}", i % 7));
            std::fs::create_dir_all(&dir).unwrap();
            for name in ["main.tf", "variables.tf", "x.tf.json"] {
                std::fs::write(dir.join(name), "").unwrap();
            }
        }
        for paths in [
            vec![root.to_path_buf()],
            vec![
                root.join("d1"),
                root.join("d1/m1"),
                root.join("d2/m2/main.tf"),
            ],
        ] {
            let seen = Mutex::new(Vec::new());
            let errors = visit_modules(&paths, &|module| seen.lock().unwrap().push(module));
            let mut seen = seen.into_inner().unwrap();
            seen.sort_by(|a, b| a.dir.cmp(&b.dir));
            let found = discover(&paths);
            assert_eq!(seen, found.modules);
            assert_eq!(errors, found.errors);
        }
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
        std::os::unix::fs::symlink(root.join("real/main.tf"), root.join("real/linked.tf")).unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("loop")).unwrap();
        let found = discover(&[root.to_path_buf()]);
        assert_eq!(found.modules.len(), 1);
        assert_eq!(
            found.modules[0].files,
            [root.join("real/linked.tf"), root.join("real/main.tf")]
        );
    }
}
