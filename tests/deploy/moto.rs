//! The moto server a deployment trial applies against: started on a free loopback port,
//! stopped when the guard is dropped — and, through a tiny shell watchdog, also when the
//! test process dies without unwinding (the watchdog stops moto when its stdin, a pipe from
//! this process, reaches end of file).
//!
//! moto (5.2) ignores `trailNameList` in CloudTrail's `DescribeTrails` and returns every trail
//! of the region (plus multi-region trails of other regions). The AWS provider reads a trail
//! that way and fails with "too many results: wanted 1, got N" as soon as an account holds
//! two trails — a `count` or `for_each` trail, for one. When `moto_server` is a Python script,
//! the harness therefore runs it through its own interpreter with [`PATCH`], which filters the
//! answer by name or ARN as AWS does; other executables run as they are.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::aws;
use crate::process::tail;

/// How long moto may take to answer its first request.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs the command after the log path in the background, prints its pid, and stops it when
/// stdin closes.
const WATCHDOG: &str = r#"
log=$1
shift
"$@" >"$log" 2>&1 &
pid=$!
echo "$pid"
read -r _ || :
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
"#;

/// Makes `DescribeTrails` honour `trailNameList`, then runs moto's server `main`.
const PATCH: &str = r#"
import json, sys
try:
    from moto.cloudtrail.responses import CloudTrailResponse
    _describe_trails = CloudTrailResponse.describe_trails
    def describe_trails(self):
        body = _describe_trails(self)
        try:
            wanted = self._get_param("trailNameList") or []
            if wanted:
                answer = json.loads(body)
                answer["trailList"] = [
                    t for t in answer["trailList"]
                    if t.get("Name") in wanted or t.get("TrailARN") in wanted
                ]
                body = json.dumps(answer)
        except Exception as error:
            print("ctfix deploy tests: DescribeTrails filter failed:", error, file=sys.stderr)
        return body
    CloudTrailResponse.describe_trails = describe_trails
except Exception as error:
    print("ctfix deploy tests: cannot patch moto's DescribeTrails:", error, file=sys.stderr)
from moto.server import main
sys.argv[0] = "moto_server"
sys.exit(main())
"#;

/// A running moto server; dropping it stops the server.
pub struct MotoServer {
    /// The loopback port it listens on.
    pub port: u16,
    watchdog: Child,
    stdin: Option<ChildStdin>,
    moto_pid: Option<u32>,
    log: PathBuf,
}

impl MotoServer {
    /// Starts `program` (`moto_server`) on a free port, logging to `<logs>/moto-<n>.log`,
    /// and waits until it answers. Tries three ports, in case another process takes the one
    /// found free before moto binds it.
    pub fn start(program: &Path, logs: &Path) -> Result<MotoServer, String> {
        std::fs::create_dir_all(logs).map_err(|e| format!("create {}: {e}", logs.display()))?;
        let mut errors = Vec::new();
        for attempt in 1..=3 {
            let port = free_port()?;
            let log = logs.join(format!("moto-{attempt}.log"));
            let mut server = spawn(program, port, log)?;
            match server.wait_until_ready(START_TIMEOUT) {
                Ok(()) => return Ok(server),
                Err(error) => errors.push(format!("port {port}: {error}")),
            }
        }
        Err(format!(
            "moto ({}) did not start:\n{}",
            program.display(),
            errors.join("\n")
        ))
    }

    /// The endpoint URL for the AWS provider.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The last lines moto logged, for failure messages.
    pub fn log_tail(&self) -> String {
        tail(&std::fs::read_to_string(&self.log).unwrap_or_default(), 30)
    }

    fn wait_until_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut last_error = String::from("no answer yet");
        while Instant::now() < deadline {
            if !self.moto_alive() {
                return Err(format!("moto exited:\n{}", self.log_tail()));
            }
            match aws::call(
                self.port,
                "kms",
                "us-east-1",
                "TrentService.ListKeys",
                &json!({}),
            ) {
                Ok(_) => return Ok(()),
                Err(error) => last_error = error,
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(format!(
            "no answer within {timeout:?} (last: {last_error})\n{}",
            self.log_tail()
        ))
    }

    /// Whether the moto process still runs (on Linux: exists and is not a zombie).
    fn moto_alive(&self) -> bool {
        let Some(pid) = self.moto_pid else {
            return false;
        };
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // The state follows the parenthesised command name.
            Ok(stat) => !stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
            Err(_) => !Path::new("/proc/self").exists(),
        }
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        // Closing stdin makes the watchdog stop moto and wait for it.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.watchdog.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(pid) = self.moto_pid {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
    }
}

/// A port nothing listens on right now.
fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("cannot bind a loopback port: {e}"))?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|e| format!("cannot read the bound port: {e}"))
}

/// The interpreter of a script's `#!` line (with its arguments), if it names Python.
fn python_of(program: &Path) -> Option<Vec<String>> {
    let text = std::fs::read(program).ok()?;
    let first = text.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(first).ok()?.strip_prefix("#!")?;
    let words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
    words.iter().any(|w| w.contains("python")).then_some(words)
}

fn spawn(program: &Path, port: u16, log: PathBuf) -> Result<MotoServer, String> {
    let mut command = Command::new("sh");
    command.arg("-c").arg(WATCHDOG).arg("sh").arg(&log);
    match python_of(program) {
        Some(interpreter) => {
            command.args(&interpreter).arg("-c").arg(PATCH);
        }
        None => {
            command.arg(program);
        }
    }
    command
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // moto reads its account id and behaviour from the environment: keep it at its defaults.
    for (name, _) in std::env::vars_os() {
        let name_text = name.to_string_lossy();
        if name_text.starts_with("MOTO_") || name_text.starts_with("AWS_") {
            command.env_remove(&name);
        }
    }
    let mut watchdog = command
        .spawn()
        .map_err(|e| format!("cannot start {} through sh: {e}", program.display()))?;
    let stdin = watchdog.stdin.take();
    let mut first_line = String::new();
    if let Some(stdout) = watchdog.stdout.take() {
        let _ = BufReader::new(stdout).read_line(&mut first_line);
    }
    Ok(MotoServer {
        port,
        watchdog,
        stdin,
        moto_pid: first_line.trim().parse().ok(),
        log,
    })
}
