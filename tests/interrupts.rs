//! Interrupts through the built binary, each landing at a known moment and checked by its
//! exit status (README, "Exit status"): the `CTFIX_TEST_PAUSE_WRITE` hook of `src/write.rs`
//! holds a write before its rename or after it, so the signal provably arrives mid-write; the
//! prompt cases run ctfix on a pseudo-terminal (`script`).
//!
//! - a signal during the only write: the write backs out, nothing was written → 130;
//! - a signal during a write after another file was written → that write backs out, the
//!   run ends normally with status 2 and the written file stays written;
//! - a signal after every file was written → the run ends normally (0), never 130;
//! - Ctrl-C (a key in raw mode) or SIGTERM at the prompt → 130, nothing written.

#![cfg(unix)]

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// How long the hook holds a write: far longer than the test needs to see it and signal.
const PAUSE_MS: u32 = 8000;

/// Spawns `ctfix --apply --yes --no-diff .` in `root` with the write hook set to `pause`.
fn spawn_apply(root: &Path, pause: &str) -> Child {
    ctfix()
        .current_dir(root)
        .args(["--apply", "--yes", "--no-diff", "."])
        .env("CTFIX_TEST_PAUSE_WRITE", pause)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits (at most 60 s) until `ready` holds.
fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kill(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

fn is_fixed(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| text.contains("kms_key_id"))
}

/// Whether a write into `dir` is in flight: its temporary file exists.
fn writing_into(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().any(|entry| {
        entry
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".ctfix-")
    })
}

/// Waits for the child, at most 60 s (the pause is shorter), and returns its output.
fn finish(child: Child) -> Output {
    let pid = child.id();
    let start = Instant::now();
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    while !waiter.is_finished() {
        if start.elapsed() > Duration::from_secs(60) {
            kill(pid, "KILL");
            panic!("ctfix did not end after the signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    waiter.join().unwrap()
}

#[test]
fn signal_during_the_only_write_backs_it_out_and_exits_130() {
    for signal in ["INT", "TERM"] {
        let tmp = tempfile::tempdir().unwrap();
        let path = write_trail_module(&tmp.path().join("a"), "a");
        let before = std::fs::read(&path).unwrap();
        let child = spawn_apply(tmp.path(), &format!("before-rename:a/main.tf:{PAUSE_MS}"));
        wait_for("the write of a/main.tf", || {
            writing_into(&tmp.path().join("a"))
        });
        kill(child.id(), signal);
        let output = finish(child);
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(130), "SIG{signal}: {stderr}");
        assert!(
            stderr.contains("a/main.tf") && stderr.contains("interrupted"),
            "SIG{signal}: {stderr}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), before, "SIG{signal}");
        assert_eq!(leftover_temp_files(tmp.path()), Vec::<PathBuf>::new());
    }
}

#[test]
fn signal_during_a_write_after_another_file_was_written_ends_with_status_2() {
    for signal in ["INT", "TERM"] {
        let tmp = tempfile::tempdir().unwrap();
        let written = write_trail_module(&tmp.path().join("a"), "a");
        let held = write_trail_module(&tmp.path().join("b"), "b");
        let before = std::fs::read(&held).unwrap();
        let child = spawn_apply(tmp.path(), &format!("before-rename:b/main.tf:{PAUSE_MS}"));
        wait_for("a/main.tf written and b/main.tf being written", || {
            is_fixed(&written) && writing_into(&tmp.path().join("b"))
        });
        kill(child.id(), signal);
        let output = finish(child);
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(2), "SIG{signal}: {stderr}");
        let line = stderr
            .lines()
            .find(|l| l.contains("b/main.tf"))
            .unwrap_or_else(|| panic!("SIG{signal}: {stderr}"));
        assert!(
            line.contains("not written: ctfix was interrupted") && line.contains("run ctfix again"),
            "{line}"
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains("Fixed 1 file"), "SIG{signal}: {stdout}");
        assert!(is_fixed(&written), "the written file stays written");
        assert_eq!(std::fs::read(&held).unwrap(), before, "SIG{signal}");
        assert_eq!(leftover_temp_files(tmp.path()), Vec::<PathBuf>::new());
    }
}

#[test]
fn signal_after_every_file_was_written_is_not_130() {
    // Regression: the handler exited 130 whenever no write was in flight, also after the
    // files were written, which the README's exit table says never happens.
    let tmp = tempfile::tempdir().unwrap();
    let path = write_trail_module(&tmp.path().join("a"), "a");
    let child = spawn_apply(tmp.path(), &format!("after-write:a/main.tf:{PAUSE_MS}"));
    wait_for("a/main.tf written", || is_fixed(&path));
    kill(child.id(), "INT");
    let output = finish(child);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("Fixed 1 file"));
}

/// Starts `ctfix --apply` on the demo tree inside a pseudo-terminal (`script`), stdin piped
/// to the terminal; returns the child, the tree, the pid file and the temporary directory.
fn prompt_in_a_terminal() -> Option<(Child, PathBuf, PathBuf, tempfile::TempDir)> {
    require(command_works("script", &["--version"]))?;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("demo");
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo"),
        &root,
    );
    let pid_file = tmp.path().join("pid");
    let command = format!(
        "echo $$ > '{}'; exec {} --apply --no-diff --color never '{}'",
        pid_file.display(),
        env!("CARGO_BIN_EXE_ctfix"),
        root.display()
    );
    let child = Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Some((child, root, pid_file, tmp))
}

/// The pid ctfix runs as inside `script`, once it is at its first prompt.
fn pid_at_the_prompt(pid_file: &Path) -> u32 {
    wait_for("ctfix to start in the terminal", || {
        std::fs::read_to_string(pid_file).is_ok_and(|s| s.trim().parse::<u32>().is_ok())
    });
    // The check and the first diff take a fraction of this on the demo tree.
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::read_to_string(pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn ctrl_c_at_the_prompt_exits_130_and_writes_nothing() {
    let Some((mut child, root, pid_file, _tmp)) = prompt_in_a_terminal() else {
        return;
    };
    let before = snapshot_all(&root);
    pid_at_the_prompt(&pid_file);
    // In raw mode the terminal passes Ctrl-C on as a byte.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"\x03").unwrap();
    stdin.flush().unwrap();
    let output = finish(child);
    drop(stdin);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("Write this fix"), "{text}");
    assert_eq!(output.status.code(), Some(130), "{text}");
    assert_eq!(snapshot_all(&root), before, "nothing is written");
}

#[test]
fn sigterm_at_the_prompt_exits_130_and_writes_nothing() {
    let Some((mut child, root, pid_file, _tmp)) = prompt_in_a_terminal() else {
        return;
    };
    let before = snapshot_all(&root);
    let pid = pid_at_the_prompt(&pid_file);
    let stdin = child.stdin.take();
    kill(pid, "TERM");
    let output = finish(child);
    drop(stdin);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("Write this fix"), "{text}");
    assert_eq!(output.status.code(), Some(130), "{text}");
    assert_eq!(snapshot_all(&root), before, "nothing is written");
}
