//! Running a child process with a deadline, its output kept in log files.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A finished process: how it exited and what it printed.
#[derive(Debug)]
pub struct Finished {
    /// The command line, for messages.
    pub command: String,
    /// The exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Finished {
    /// The exit code (`-1` when killed by a signal).
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }

    /// The command, its exit code and the last lines of both streams.
    pub fn describe(&self) -> String {
        format!(
            "`{}` exited {}\n--- stdout (last lines) ---\n{}\n--- stderr (last lines) ---\n{}",
            self.command,
            self.code(),
            tail(&self.stdout, 80),
            tail(&self.stderr, 40)
        )
    }
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    let mut out = String::new();
    if start > 0 {
        out.push_str(&format!("[… {start} lines omitted]\n"));
    }
    out.push_str(&all[start..].join("\n"));
    out
}

/// Runs `command` (stdin closed) until it exits or `timeout` passes; its output goes to
/// `<logs>/<step>.stdout` and `.stderr`. On timeout the process gets SIGINT (Terraform then
/// stops its providers), then SIGKILL ten seconds later, and the result is an error.
pub fn run(
    mut command: Command,
    logs: &Path,
    step: &str,
    timeout: Duration,
) -> Result<Finished, String> {
    let line = command_line(&command);
    std::fs::create_dir_all(logs).map_err(|e| format!("create {}: {e}", logs.display()))?;
    let stdout_path = logs.join(format!("{step}.stdout"));
    let stderr_path = logs.join(format!("{step}.stderr"));
    let create = |path: &PathBuf| {
        std::fs::File::create(path).map_err(|e| format!("create {}: {e}", path.display()))
    };
    command
        .stdin(Stdio::null())
        .stdout(create(&stdout_path)?)
        .stderr(create(&stderr_path)?);
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run `{line}`: {e}"))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                interrupt_then_kill(&mut child);
                let read = |path: &PathBuf| std::fs::read_to_string(path).unwrap_or_default();
                return Err(format!(
                    "`{line}` did not finish within {timeout:?} and was stopped\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    tail(&read(&stdout_path), 60),
                    tail(&read(&stderr_path), 30)
                ));
            }
            Err(error) => return Err(format!("waiting for `{line}`: {error}")),
        }
    };
    let read = |path: &PathBuf| {
        std::fs::read(path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .map_err(|e| format!("read {}: {e}", path.display()))
    };
    Ok(Finished {
        command: line,
        status,
        stdout: read(&stdout_path)?,
        stderr: read(&stderr_path)?,
    })
}

/// SIGINT, up to ten seconds to exit, then SIGKILL; always reaps the child.
pub fn interrupt_then_kill(child: &mut std::process::Child) {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `program arg arg…`, for messages.
fn command_line(command: &Command) -> String {
    let mut line = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}
