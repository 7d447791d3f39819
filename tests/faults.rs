//! Faults while ctfix writes: every case must end with a message naming the path, what
//! happened and what to do, exit status 2, every other file processed normally, and no byte of
//! user data lost (the file holds exactly what it held, or exactly the fix; never a mix, never
//! a lost edit, never a file recreated after it was deleted).
//!
//! The tests run as root here, which ignores permission bits, so faults are provoked in ways
//! that bind root too: `chattr +i`, a real full tmpfs (when `mount` is allowed), and the
//! `write_atomically_with` seam, which lets a test fail or disturb the write of the temporary
//! file (ENOSPC, a short write, a panic, the file edited or deleted meanwhile).

#![cfg(unix)]

mod support;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ctfix::cli::{Args, Choice, Prompter};
use ctfix::write::{write_atomically, write_atomically_with};
use ctfix::ExitStatus;
use support::*;

/// Runs `ctfix --apply --yes .` in `root`.
fn apply_in(root: &Path) -> Output {
    ctfix()
        .current_dir(root)
        .args(["--apply", "--yes", "--no-diff", "."])
        .output()
        .unwrap()
}

fn is_fixed(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| text.contains("kms_key_id"))
}

/// Asserts the run failed with exit 2 and that stderr has one line naming `path` with every
/// one of `needles`.
fn assert_error(output: &Output, path: &str, needles: &[&str]) {
    let stderr = stderr_of(output);
    assert_eq!(output.status.code(), Some(2), "stderr:\n{stderr}");
    let line = stderr
        .lines()
        .find(|line| line.contains(path) && needles.iter().all(|n| line.contains(n)))
        .unwrap_or_else(|| panic!("no error line with {path} and {needles:?} in:\n{stderr}"));
    assert!(line.starts_with("error: "), "{line}");
}

// --- read-only and immutable files, directories without room for a temporary file ---------

#[test]
fn read_only_file_is_left_alone_and_the_others_are_fixed() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let locked = write_trail_module(&tmp.path().join("locked"), "locked");
    let open = write_trail_module(&tmp.path().join("open"), "open");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o444)).unwrap();
    let before = std::fs::read(&locked).unwrap();

    let output = apply_in(tmp.path());
    assert_error(&output, "locked/main.tf", &["is read-only", "chmod u+w"]);
    assert_eq!(std::fs::read(&locked).unwrap(), before);
    assert!(is_fixed(&open));
    assert_eq!(leftover_temp_files(tmp.path()), Vec::<PathBuf>::new());
}

#[test]
fn immutable_file_is_an_error_and_the_others_are_fixed() {
    let tmp = tempfile::tempdir().unwrap();
    let locked = write_trail_module(&tmp.path().join("locked"), "locked");
    let open = write_trail_module(&tmp.path().join("open"), "open");
    let before = std::fs::read(&locked).unwrap();
    let Some(_guard) = require(Immutable::set(&locked)) else {
        return;
    };

    let output = apply_in(tmp.path());
    assert_error(
        &output,
        "locked/main.tf",
        &["cannot replace the file", "left untouched", "lsattr"],
    );
    assert_eq!(std::fs::read(&locked).unwrap(), before);
    assert!(is_fixed(&open));
    assert_eq!(leftover_temp_files(tmp.path()), Vec::<PathBuf>::new());
}

#[test]
fn directory_without_room_for_the_temporary_file_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let locked_dir = tmp.path().join("locked");
    let locked = write_trail_module(&locked_dir, "locked");
    let open = write_trail_module(&tmp.path().join("open"), "open");
    let before = std::fs::read(&locked).unwrap();
    // An immutable directory refuses new entries, even to root.
    let Some(_guard) = require(Immutable::set(&locked_dir)) else {
        return;
    };

    let output = apply_in(tmp.path());
    assert_error(
        &output,
        "locked/main.tf",
        &[
            "cannot create a temporary file in",
            "make the directory writable",
        ],
    );
    assert_eq!(std::fs::read(&locked).unwrap(), before);
    assert!(is_fixed(&open));
}

// --- a full disk -----------------------------------------------------------------------------

#[test]
fn full_disk_injected_leaves_the_file_and_no_temporary_file() {
    for written_before_failing in [0, 1, 100] {
        let tmp = tempfile::tempdir().unwrap();
        let path = write_trail_module(tmp.path(), "t");
        let before = std::fs::read(&path).unwrap();
        let after = [before.as_slice(), b"# more\n"].concat();
        let error = write_atomically_with(&path, &before, &after, &mut |file, bytes| {
            file.write_all(&bytes[..written_before_failing.min(bytes.len())])?;
            Err(io::Error::from_raw_os_error(28)) // ENOSPC
        })
        .unwrap_err();
        assert_eq!(error.path, path);
        assert!(
            error.message.contains("cannot write the temporary file")
                && error.message.contains("the disk is full")
                && error.message.contains("left untouched"),
            "{error}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(leftover_temp_files(tmp.path()), Vec::<PathBuf>::new());
        // Space freed: the same write succeeds.
        write_atomically(&path, &before, &after).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), after);
    }
}

/// A small tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(at).unwrap();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "ctfix-faults"])
            .arg(at)
            .output()
            .map_err(|e| e.to_string())?;
        if output.status.success() {
            Ok(Tmpfs(at.to_path_buf()))
        } else {
            Err(stderr_of(&output))
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn full_disk_for_real_on_a_full_tmpfs() {
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    // Without `mount` (no CAP_SYS_ADMIN) the injected full-disk test above still runs.
    let Some(tmpfs) = require(
        Tmpfs::mount(&full, "256k").map_err(|why| format!("cannot mount a tmpfs here: {why}")),
    ) else {
        return;
    };
    let stuck = write_trail_module(&full.join("module"), "stuck");
    let open = write_trail_module(&tmp.path().join("open"), "open");
    let before = std::fs::read(&stuck).unwrap();
    // Fill the file system.
    let mut filler = std::fs::File::create(full.join("filler")).unwrap();
    let chunk = vec![b'x'; 4096];
    while filler.write_all(&chunk).is_ok() {}
    drop(filler);

    let output = apply_in(tmp.path());
    assert_error(
        &output,
        "full/module/main.tf",
        &["No space left on device", "the disk is full"],
    );
    assert_eq!(std::fs::read(&stuck).unwrap(), before);
    assert!(is_fixed(&open));
    assert_eq!(leftover_temp_files(&full), Vec::<PathBuf>::new());
    drop(tmpfs);
}

// --- the file changes, or disappears, while ctfix runs --------------------------------------

/// A "user" who answers yes and, before answering, does something to the tree.
struct Meddler<F: FnMut()>(F);

impl<F: FnMut()> Prompter for Meddler<F> {
    fn is_interactive(&self) -> bool {
        true
    }

    fn choose(&mut self, _question: &str) -> io::Result<Choice> {
        (self.0)();
        Ok(Choice::All)
    }
}

/// Runs `ctfix --apply <root>` in-process, with `meddle` run at the prompt (after ctfix read
/// and planned everything, before it writes). Returns the status and stderr.
fn apply_with_meddling(root: &Path, meddle: impl FnMut()) -> (ExitStatus, String) {
    use clap::Parser;
    let args = Args::parse_from([
        Path::new("ctfix"),
        Path::new("--apply"),
        Path::new("--no-diff"),
        root,
    ]);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = ctfix::cli::run(&args, &mut out, &mut err, &mut Meddler(meddle)).unwrap();
    let mut text = String::from_utf8(out).unwrap();
    text.push_str(&String::from_utf8(err).unwrap());
    (status, text)
}

#[test]
fn file_edited_between_read_and_write_is_skipped_with_the_edit_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let edited = write_trail_module(&tmp.path().join("edited"), "edited");
    let other = write_trail_module(&tmp.path().join("other"), "other");
    let users_edit = trail_tf("edited").replace("audit-logs", "audit-logs-v2");

    let (status, output) = apply_with_meddling(tmp.path(), || {
        std::fs::write(&edited, &users_edit).unwrap();
    });
    assert_eq!(status, ExitStatus::Error, "{output}");
    let line = output
        .lines()
        .find(|l| l.contains("edited/main.tf") && l.contains("changed on disk since ctfix read it"))
        .unwrap_or_else(|| panic!("{output}"));
    assert!(line.contains("run ctfix again"), "{line}");
    assert_eq!(std::fs::read_to_string(&edited).unwrap(), users_edit);
    assert!(is_fixed(&other));
}

#[test]
fn file_edited_while_the_fix_is_being_written_is_kept() {
    // The last check happens after the temporary file is written: an edit made during the
    // (possibly slow: fsync) write is caught too, even one that keeps the length.
    let tmp = tempfile::tempdir().unwrap();
    let path = write_trail_module(tmp.path(), "t");
    let before = std::fs::read(&path).unwrap();
    let users_edit = String::from_utf8(before.clone())
        .unwrap()
        .replace("audit-logs", "audit-LOGS");
    let error = write_atomically_with(&path, &before, b"fixed", &mut |file, bytes| {
        std::fs::write(&path, &users_edit)?;
        file.write_all(bytes)
    })
    .unwrap_err();
    assert!(error.message.contains("changed on disk"), "{error}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), users_edit);
    assert_eq!(leftover_temp_files(tmp.path()), Vec::<PathBuf>::new());
}

#[test]
fn file_replaced_by_a_copy_while_the_fix_is_being_written_is_kept() {
    // Same bytes, new file (an editor's save-by-rename): still not what ctfix read.
    let tmp = tempfile::tempdir().unwrap();
    let path = write_trail_module(tmp.path(), "t");
    let before = std::fs::read(&path).unwrap();
    let error = write_atomically_with(&path, &before, b"fixed", &mut |file, bytes| {
        let copy = path.with_extension("saved");
        std::fs::write(&copy, &before)?;
        std::fs::rename(&copy, &path)?;
        file.write_all(bytes)
    })
    .unwrap_err();
    assert!(error.message.contains("changed on disk"), "{error}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn file_deleted_before_the_write_is_not_recreated() {
    let tmp = tempfile::tempdir().unwrap();
    let deleted = write_trail_module(&tmp.path().join("deleted"), "deleted");
    let other = write_trail_module(&tmp.path().join("other"), "other");

    let (status, output) = apply_with_meddling(tmp.path(), || {
        std::fs::remove_file(&deleted).unwrap();
    });
    assert_eq!(status, ExitStatus::Error, "{output}");
    let line = output
        .lines()
        .find(|l| l.contains("deleted/main.tf") && l.contains("was deleted since ctfix read it"))
        .unwrap_or_else(|| panic!("{output}"));
    assert!(line.contains("did not recreate it"), "{line}");
    assert!(!deleted.exists(), "ctfix recreated a deleted file");
    assert!(is_fixed(&other));
}

#[test]
fn file_deleted_while_the_fix_is_being_written_is_not_recreated() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write_trail_module(tmp.path(), "t");
    let before = std::fs::read(&path).unwrap();
    let error = write_atomically_with(&path, &before, b"fixed", &mut |file, bytes| {
        std::fs::remove_file(&path)?;
        file.write_all(bytes)
    })
    .unwrap_err();
    assert!(error.message.contains("was deleted"), "{error}");
    assert!(!path.exists());
    assert_eq!(leftover_temp_files(tmp.path()), Vec::<PathBuf>::new());
}

#[test]
fn file_deleted_between_discovery_and_reading_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let present = write_trail_module(tmp.path(), "present");
    let gone = tmp.path().join("gone.tf");
    let module = ctfix::discover::ModuleDir {
        dir: tmp.path().to_path_buf(),
        files: vec![gone.clone(), present.clone()],
        json_files: Vec::new(),
        targets: [gone.clone(), present.clone()].into_iter().collect(),
        dot_terraform: None,
    };
    let report = ctfix::check_module(&module, &ctfix::Settings::default());
    let error = report
        .errors
        .iter()
        .find(|e| e.path == gone)
        .unwrap_or_else(|| panic!("{:?}", report.errors));
    assert!(
        error.message.contains("cannot read file") && error.message.contains("run ctfix again"),
        "{error}"
    );
    assert_eq!(report.changes.len(), 1, "the readable file is still fixed");
    assert_eq!(ctfix::ExitStatus::of(&report), ExitStatus::Error);
}

// --- interrupts --------------------------------------------------------------------------------

#[test]
fn a_panic_while_writing_leaves_the_file_and_no_temporary_file() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write_trail_module(tmp.path(), "t");
    let before = std::fs::read(&path).unwrap();
    let unwound = std::panic::catch_unwind(|| {
        let _ = write_atomically_with(&path, &before, b"fixed", &mut |file, bytes| {
            file.write_all(&bytes[..2])?;
            panic!("interrupted mid-write");
        });
    });
    assert!(unwound.is_err());
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(leftover_temp_files(tmp.path()), Vec::<PathBuf>::new());
}

/// A tree of `modules` modules with one trail each; returns the input and the fully fixed
/// snapshots.
fn interrupt_tree(root: &Path, modules: usize) -> (SnapshotAll, SnapshotAll) {
    for i in 0..modules {
        write_trail_module(&root.join(format!("m{i:04}")), &format!("t{i}"));
    }
    let input = snapshot_all(root);
    let scratch = tempfile::tempdir().unwrap();
    copy_tree(root, scratch.path());
    let output = apply_in(scratch.path());
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    (input, snapshot_all(scratch.path()))
}

type SnapshotAll = Vec<(PathBuf, Vec<u8>)>;

/// Interrupts `ctfix --apply --yes` with SIGINT at `rounds` moments spread over its run time
/// and checks each time that every file is exactly as read or exactly fixed, that no other
/// Terraform file appeared, and that a rerun finishes the job. Returns the temporary files
/// the interrupted runs left.
fn interrupt_during_apply(rounds: u32) -> Vec<PathBuf> {
    let template = tempfile::tempdir().unwrap();
    let (input, fixed) = interrupt_tree(template.path(), 100);
    let start = Instant::now();
    let run = tempfile::tempdir().unwrap();
    copy_tree(template.path(), run.path());
    apply_in(run.path());
    let full_run = start.elapsed();

    let mut leftovers = Vec::new();
    let (mut untouched, mut written) = (0, 0);
    for round in 1..=rounds {
        let tmp = tempfile::tempdir().unwrap();
        copy_tree(template.path(), tmp.path());
        let mut child = ctfix()
            .current_dir(tmp.path())
            .args(["--apply", "--yes", "--quiet", "."])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(full_run * round / (rounds + 1));
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        child.wait().unwrap();

        let state = snapshot_all(tmp.path());
        for (path, bytes) in &state {
            let name = path.file_name().unwrap().to_string_lossy();
            if name.starts_with(".ctfix-") && name.ends_with(".tmp") {
                leftovers.push(path.clone());
                continue;
            }
            let was = input.iter().find(|(p, _)| p == path);
            let fix = fixed.iter().find(|(p, _)| p == path);
            match (was, fix) {
                (Some((_, was)), _) if was == bytes => untouched += 1,
                (_, Some((_, fix))) if fix == bytes => written += 1,
                _ => panic!(
                    "round {round}: {} is neither the input nor the fix:\n{}",
                    path.display(),
                    String::from_utf8_lossy(bytes)
                ),
            }
        }
        // The rerun completes the job (temporary files aside, which are not Terraform).
        let output = apply_in(tmp.path());
        assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
        let done: SnapshotAll = snapshot_all(tmp.path())
            .into_iter()
            .filter(|(p, _)| !p.to_string_lossy().contains(".ctfix-"))
            .collect();
        assert_eq!(
            done, fixed,
            "round {round}: the rerun did not finish the fix"
        );
    }
    eprintln!(
        "interrupt_during_apply: full run {full_run:?}; {untouched} files untouched, {written} written, {} temporary files left in {rounds} interrupted runs",
        leftovers.len()
    );
    leftovers
}

#[test]
fn interrupt_during_apply_never_leaves_a_half_written_file() {
    interrupt_during_apply(6);
}

#[test]

fn interrupt_during_apply_leaves_no_temporary_file() {
    let leftovers = interrupt_during_apply(6);
    assert_eq!(leftovers, Vec::<PathBuf>::new());
}

// --- links -------------------------------------------------------------------------------------

#[test]
fn hard_linked_file_is_not_split() {
    let tmp = tempfile::tempdir().unwrap();
    let linked = write_trail_module(&tmp.path().join("a"), "a");
    let other = write_trail_module(&tmp.path().join("b"), "b");
    let outside = tempfile::tempdir().unwrap();
    std::fs::hard_link(&linked, outside.path().join("copy.tf")).unwrap();
    let before = std::fs::read(&linked).unwrap();

    let output = apply_in(tmp.path());
    assert_error(&output, "a/main.tf", &["2 hard links", "left it untouched"]);
    assert_eq!(std::fs::read(&linked).unwrap(), before);
    assert_eq!(
        std::fs::read(outside.path().join("copy.tf")).unwrap(),
        before
    );
    assert!(is_fixed(&other));
}

#[test]
fn owner_and_mode_are_kept() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let tmp = tempfile::tempdir().unwrap();
    let path = write_trail_module(tmp.path(), "t");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    // As root, hand the file to another user first: the fixed file must keep that owner.
    let _ = std::os::unix::fs::chown(&path, Some(4242), Some(4343));
    let before = std::fs::metadata(&path).unwrap();
    let output = apply_in(tmp.path());
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let after = std::fs::metadata(&path).unwrap();
    assert!(is_fixed(&path));
    assert_eq!(
        (after.uid(), after.gid(), after.mode()),
        (before.uid(), before.gid(), before.mode())
    );
    assert_ne!(after.ino(), before.ino(), "written by rename, not in place");
}

#[test]
fn interrupted_runs_finish_quickly() {
    // Guard against a SIGINT handler that would hang: the child must be gone soon after.
    let tmp = tempfile::tempdir().unwrap();
    write_trail_module(tmp.path(), "t");
    let mut child = ctfix()
        .current_dir(tmp.path())
        .args(["--apply", "--yes", "--quiet", "."])
        .spawn()
        .unwrap();
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "ctfix ignored SIGINT"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

// --- a module's change set is written whole or not at all -----------------------------------
//
// Module `m` has two trails in two files; the fix planned for `a.tf` declares the data sources
// the key generated in `b.tf` refers to, so writing one file without the other leaves a module
// `terraform validate` rejects. Module `other` is a bystander that must still be fixed.

/// Writes module `m` (trails in `a.tf` and `b.tf`, `b.tf` padded with `padding` comment bytes)
/// and module `other` under `root`; returns their directories.
fn two_file_module(root: &Path, padding: usize) -> (PathBuf, PathBuf) {
    let m = root.join("m");
    std::fs::create_dir_all(&m).unwrap();
    std::fs::write(m.join("a.tf"), trail_tf("alpha")).unwrap();
    let comment = format!("# {}\n", "x".repeat(78)).repeat(padding.div_ceil(81));
    std::fs::write(m.join("b.tf"), format!("{comment}{}", trail_tf("beta"))).unwrap();
    let other = root.join("other");
    write_trail_module(&other, "other");
    (m, other)
}

/// Every file of `dir` with its bytes and permission bits.
fn files_with_modes(dir: &Path) -> Vec<(PathBuf, Vec<u8>, u32)> {
    use std::os::unix::fs::PermissionsExt;
    snapshot_all(dir)
        .into_iter()
        .map(|(rel, bytes)| {
            let mode = std::fs::metadata(dir.join(&rel))
                .unwrap()
                .permissions()
                .mode();
            (rel, bytes, mode)
        })
        .collect()
}

/// Checks the bystander module: fixed, and still valid Terraform.
fn assert_fixed_and_valid(dir: &Path) {
    assert!(
        is_fixed(&dir.join("main.tf")),
        "{} was not fixed",
        dir.display()
    );
    assert_module_validates(dir);
}

/// `terraform init` + `validate` on a copy of `dir` with the provider mirror; reports the
/// check ignored (or fails under CTFIX_REQUIRE_TOOLS=1) when terraform or the mirror is
/// missing.
fn assert_module_validates(dir: &Path) {
    let why = terraform_missing().or_else(|| provider_mirror().err());
    if let Some(why) = why {
        assert!(!tools_required(), "terraform validate needed: {why}");
        eprintln!("IGNORED terraform validate of {}: {why}", dir.display());
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let config = write_terraform_cli_config(scratch.path(), &provider_mirror().unwrap());
    let copy = scratch.path().join("module");
    copy_tree(dir, &copy);
    for step in [
        &["init", "-backend=false", "-input=false", "-no-color"][..],
        &["validate", "-no-color"],
    ] {
        let output = terraform(&config, &copy).args(step).output().unwrap();
        assert!(
            output.status.success(),
            "terraform {} of {} failed:\n{}{}",
            step[0],
            dir.display(),
            String::from_utf8_lossy(&output.stdout),
            stderr_of(&output)
        );
    }
}

/// Runs ctfix as user `nobody` (through `runuser`, with a copy of the binary nobody can run)
/// after handing `root` to it; `None` when that is impossible here. Not root: runs directly.
fn run_as_nobody(root: &Path, args: &[&str]) -> Option<Output> {
    use std::os::unix::fs::MetadataExt;
    let is_root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !is_root {
        return Some(ctfix().current_dir(root).args(args).output().unwrap());
    }
    let chown = Command::new("chown")
        .args(["-R", "nobody:"])
        .arg(root)
        .status()
        .ok()?;
    if !chown.success() {
        return None;
    }
    // The temporary directories above `root` belong to root and are private.
    let mut dir = root.parent();
    while let Some(d) =
        dir.filter(|d| d.starts_with(std::env::temp_dir()) && *d != std::env::temp_dir())
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).ok()?;
        dir = d.parent();
    }
    let binary = binary_for_nobody()?;
    let output = Command::new("runuser")
        .args(["-u", "nobody", "--"])
        .arg(binary)
        .args(args)
        .current_dir(root)
        .env("NO_COLOR", "1")
        .output()
        .ok()?;
    // runuser's own failure (no such user, not allowed) is not ctfix's.
    (output.status.code() != Some(125) && output.status.code() != Some(126)).then_some(output)
}

/// One copy of the binary that `nobody` can run, made once per test process: tests run in
/// parallel, and a copy being written while another test forks makes `exec` fail with "Text
/// file busy".
fn binary_for_nobody() -> Option<&'static std::path::Path> {
    static BINARY: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    BINARY
        .get_or_init(|| {
            // Copies left by earlier runs (the process that made each is gone) go first.
            for entry in std::fs::read_dir(std::env::temp_dir()).ok()?.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("ctfix-as-nobody-") {
                    if !Path::new("/proc").join(pid).exists() {
                        std::fs::remove_file(entry.path()).ok();
                    }
                }
            }
            let binary =
                std::env::temp_dir().join(format!("ctfix-as-nobody-{}", std::process::id()));
            std::fs::copy(env!("CARGO_BIN_EXE_ctfix"), &binary).ok()?;
            Some(binary)
        })
        .as_deref()
}

/// The stderr line naming `path` with every one of `needles` (exit status 2 checked).
fn module_error<'a>(stderr: &'a str, path: &str, needles: &[&str]) -> &'a str {
    stderr
        .lines()
        .find(|line| line.contains(path) && needles.iter().all(|n| line.contains(n)))
        .unwrap_or_else(|| panic!("no error line with {path} and {needles:?} in:\n{stderr}"))
}

#[test]
fn read_only_file_beside_a_writable_one_leaves_the_module_as_it_was() {
    // Regression: b.tf was written, referring to data sources only a.tf's fix declared.
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("tree");
    let (m, other) = two_file_module(&root, 0);
    let output = match run_as_nobody(&root, &["--version"]) {
        Some(_) => {
            std::fs::set_permissions(m.join("a.tf"), std::fs::Permissions::from_mode(0o444))
                .unwrap();
            let before = files_with_modes(&m);
            let output = run_as_nobody(&root, &["--apply", "--yes", "--no-diff", "."]).unwrap();
            assert_eq!(files_with_modes(&m), before, "module m was changed");
            output
        }
        None => {
            assert!(!tools_required(), "cannot run ctfix as nobody here");
            eprintln!("NOTE: cannot run ctfix as nobody here; running as the current user (ctfix checks the mode bits either way)");
            std::fs::set_permissions(m.join("a.tf"), std::fs::Permissions::from_mode(0o444))
                .unwrap();
            let before = files_with_modes(&m);
            let output = apply_in(&root);
            assert_eq!(files_with_modes(&m), before, "module m was changed");
            output
        }
    };
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    module_error(
        &stderr,
        "m/a.tf",
        &["is read-only", "module was left as it was", "m/b.tf"],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        stdout.matches("safe, applied").count(),
        1,
        "only module other is fixed: {stdout}"
    );
    assert_eq!(leftover_temp_files(&root), Vec::<PathBuf>::new());
    assert_fixed_and_valid(&other);
}

#[test]
fn failure_of_the_second_rename_puts_the_first_file_back() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let (m, other) = two_file_module(tmp.path(), 0);
    // A mode of its own, which the restored original must have again.
    std::fs::set_permissions(m.join("a.tf"), std::fs::Permissions::from_mode(0o640)).unwrap();
    let before = files_with_modes(&m);

    let output = ctfix()
        .current_dir(tmp.path())
        .args(["--apply", "--yes", "--no-diff", "."])
        .env("CTFIX_TEST_FAIL_RENAME", "2")
        .output()
        .unwrap();
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    module_error(
        &stderr,
        "m/b.tf",
        &[
            "cannot replace the file",
            "injected",
            "module was left as it was",
            "put its original back",
        ],
    );
    assert_eq!(files_with_modes(&m), before, "module m was not restored");
    assert_eq!(leftover_temp_files(tmp.path()), Vec::<PathBuf>::new());
    assert_fixed_and_valid(&other);
    // Nothing is left to stop a rerun.
    let rerun = apply_in(tmp.path());
    assert_eq!(rerun.status.code(), Some(0), "{}", stderr_of(&rerun));
    assert_module_validates(&m);
}

#[test]
fn interrupt_between_two_renames_backs_out_the_module() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("tree");
    let (m, other) = two_file_module(&root, 0);
    let before = files_with_modes(&m);
    let marker = tmp.path().join("paused");

    let child = ctfix()
        .current_dir(&root)
        .args(["--apply", "--yes", "--no-diff", "."])
        .env("CTFIX_TEST_PAUSE_AFTER_RENAME", &marker)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until m/a.tf is renamed into place (ctfix pauses there) and the bystander module,
    // written in parallel, is done; then Ctrl-C.
    let start = Instant::now();
    while !(marker.exists() && is_fixed(&other.join("main.tf"))) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "ctfix never paused between the renames"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(is_fixed(&m.join("a.tf")), "paused after the first rename");
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = stderr_of(&output);
    // 2 (an error) or 130 (interrupted): never success, never "findings".
    assert!(
        matches!(output.status.code(), Some(2) | Some(130)),
        "{:?}\n{stderr}",
        output.status
    );
    module_error(
        &stderr,
        "m/b.tf",
        &[
            "interrupted",
            "module was left as it was",
            "put its original back",
        ],
    );
    assert_eq!(files_with_modes(&m), before, "module m was not restored");
    assert_eq!(leftover_temp_files(&root), Vec::<PathBuf>::new());
    assert_fixed_and_valid(&other);
}

#[test]
fn full_disk_on_the_second_file_leaves_the_module_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    let tmpfs = match Tmpfs::mount(&full, "1m") {
        Ok(tmpfs) => tmpfs,
        Err(why) => {
            assert!(!tools_required(), "cannot mount a tmpfs here: {why}");
            eprintln!("IGNORED full_disk_on_the_second_file: cannot mount a tmpfs here: {why}");
            return;
        }
    };
    // b.tf's fix needs two pages of the file system: a.tf's fix and the copy of a.tf kept to
    // restore it from take the two left free.
    let (m, other) = two_file_module(&full, 5000);
    std::fs::remove_dir_all(&other).unwrap();
    let other = tmp.path().join("other");
    write_trail_module(&other, "other");
    let before = files_with_modes(&m);
    let spare = full.join("spare");
    std::fs::write(&spare, vec![b's'; 2 * 4096]).unwrap();
    let mut filler = std::fs::File::create(full.join("filler")).unwrap();
    let chunk = vec![b'x'; 4096];
    while filler.write_all(&chunk).is_ok() {}
    drop(filler);
    std::fs::remove_file(&spare).unwrap();

    let output = apply_in(tmp.path());
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    module_error(
        &stderr,
        "full/m/b.tf",
        &[
            "the disk is full",
            "module was left as it was",
            "full/m/a.tf",
        ],
    );
    assert_eq!(files_with_modes(&m), before, "module m was changed");
    assert_eq!(leftover_temp_files(&full), Vec::<PathBuf>::new());
    assert_fixed_and_valid(&other);
    drop(tmpfs);
}
