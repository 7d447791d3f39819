//! The moto server a deployment trial applies against: started on a free loopback port,
//! stopped when the guard is dropped — and, through a tiny shell watchdog, also when the
//! test process dies without unwinding (the watchdog stops moto when its stdin, a pipe from
//! this process, reaches end of file).
//!
//! moto (5.2) ignores `trailNameList` in CloudTrail's `DescribeTrails` and returns every trail
//! of the region (plus multi-region trails of other regions). The AWS provider reads a trail
//! that way and fails with "too many results: wanted 1, got N" as soon as an account holds
//! two trails — a `count` or `for_each` trail, for one. So moto runs with a
//! `sitecustomize.py` ([`SITECUSTOMIZE`]) on its `PYTHONPATH` that filters the answer by name
//! or ARN as AWS does; whatever launches moto (a venv script, a pyenv shim, pipx), its Python
//! loads that file first. The same file answers the version probe ([`version`]).

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

/// Loaded by every Python started with the support directory on `PYTHONPATH`; acts only
/// when the harness's variables ask it to.
pub const SITECUSTOMIZE: &str = r#"# Written by ctfix's tests/deploy.rs for the moto server it starts (see tests/deploy/moto.rs).
import json, os, sys

if os.environ.get("CTFIX_MOTO_PROBE"):
    try:
        import moto
        print(moto.__version__)
    except Exception as error:
        print("cannot import moto:", error)
    sys.stdout.flush()
    os._exit(0)

if os.environ.get("CTFIX_MOTO_PATCH"):
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
"#;

/// The oldest moto the harness is known to work with: 5.2.1 (still found on some machines)
/// fails `StartLogging` when given a trail ARN, as the AWS provider does.
pub const MIN_VERSION: [u32; 3] = [5, 2, 5];

/// Writes [`SITECUSTOMIZE`] into `dir`, which then goes on moto's `PYTHONPATH`.
pub fn write_support(dir: &Path) -> Result<(), String> {
    let path = dir.join("sitecustomize.py");
    std::fs::write(&path, SITECUSTOMIZE).map_err(|e| format!("write {}: {e}", path.display()))
}

/// The version of the moto that `program` runs, asked through the support directory; an
/// error when it is older than [`MIN_VERSION`] or cannot be told.
pub fn version(program: &Path, support: &Path) -> Result<String, String> {
    let mut command = Command::new(program);
    command.arg("--help");
    python_environment(&mut command, support).env("CTFIX_MOTO_PROBE", "1");
    let finished = crate::process::run(command, support, "moto-probe", Duration::from_secs(60))?;
    let version = finished.stdout.trim().to_owned();
    let numbers: Vec<u32> = version
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|n| n.parse().unwrap_or(0))
        .collect();
    if numbers.len() < 3 || version.starts_with("cannot") {
        return Err(format!(
            "cannot tell which moto {} runs: {version}{}",
            program.display(),
            finished.stderr.trim()
        ));
    }
    if numbers[..] < MIN_VERSION[..] {
        let [a, b, c] = MIN_VERSION;
        return Err(format!(
            "{} runs moto {version}, older than {a}.{b}.{c}, which the deploy tests need (pip install 'moto[server]>={a}.{b}.{c},<6'; scripts/test does)",
            program.display()
        ));
    }
    Ok(version)
}

/// Puts `support` first on `PYTHONPATH` and keeps moto's account and behaviour at their
/// defaults.
fn python_environment<'c>(command: &'c mut Command, support: &Path) -> &'c mut Command {
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        if text.starts_with("MOTO_") || text.starts_with("AWS_") || text.starts_with("CTFIX_MOTO_")
        {
            command.env_remove(&name);
        }
    }
    let mut paths = vec![support.to_path_buf()];
    paths.extend(
        std::env::var_os("PYTHONPATH")
            .iter()
            .flat_map(std::env::split_paths),
    );
    if let Ok(joined) = std::env::join_paths(paths) {
        command.env("PYTHONPATH", joined);
    }
    command
}

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
    /// Starts `program` (`moto_server`) with the support directory (see [`write_support`]) on
    /// a free port, logging to `<logs>/moto-<n>.log`, and waits until it answers. Tries three
    /// ports, in case another process takes the one found free before moto binds it.
    pub fn start(program: &Path, support: &Path, logs: &Path) -> Result<MotoServer, String> {
        std::fs::create_dir_all(logs).map_err(|e| format!("create {}: {e}", logs.display()))?;
        let mut errors = Vec::new();
        for attempt in 1..=3 {
            let port = free_port()?;
            let log = logs.join(format!("moto-{attempt}.log"));
            let mut server = spawn(program, support, port, log)?;
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

fn spawn(program: &Path, support: &Path, port: u16, log: PathBuf) -> Result<MotoServer, String> {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(WATCHDOG)
        .arg("sh")
        .arg(&log)
        .arg(program);
    python_environment(&mut command, support).env("CTFIX_MOTO_PATCH", "1");
    command
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
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
