//! Helpers shared by the integration tests: running the built binary, copying trees, and the
//! external tools (terraform) some checks need.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[allow(clippy::duplicate_mod)] // also a module of `invariants` in the tests that use both
mod lines;
#[allow(unused_imports)]
pub use lines::check_lines_kept;

/// The ctfix binary cargo built for these tests.
pub fn ctfix() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ctfix"));
    command.env("NO_COLOR", "1").env_remove("CLICOLOR_FORCE");
    command
}

/// Runs ctfix with `args` and returns its output.
pub fn run_ctfix(args: &[&str], path: &Path) -> Output {
    ctfix()
        .args(args)
        .arg(path)
        .output()
        .expect("run the ctfix binary")
}

/// Copies a directory tree.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Every file under `root`, relative, sorted.
pub fn list_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// Every visible file under `root` (as [`list_files`]) with its bytes.
pub fn snapshot(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    list_files(root)
        .into_iter()
        .map(|rel| {
            let bytes = std::fs::read(root.join(&rel)).unwrap();
            (rel, bytes)
        })
        .collect()
}

/// Why terraform cannot be used here, or `None` when it can.
pub fn terraform_missing() -> Option<String> {
    match Command::new("terraform").arg("version").output() {
        Ok(output) if output.status.success() => None,
        Ok(output) => Some(format!(
            "`terraform version` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )),
        Err(error) => Some(format!("terraform is not on PATH: {error}")),
    }
}

/// The AWS provider mirror directory, or why it is missing.
pub fn provider_mirror() -> Result<PathBuf, String> {
    let dir = std::env::var_os("CTFIX_TF_PLUGIN_MIRROR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/tf-plugins"));
    if dir.join("registry.terraform.io/hashicorp/aws").is_dir() {
        Ok(dir)
    } else {
        Err(format!(
            "no AWS provider mirror at {} (set CTFIX_TF_PLUGIN_MIRROR)",
            dir.display()
        ))
    }
}

/// A Terraform CLI configuration that installs providers from the mirror only, written into
/// `dir`; returns its path.
pub fn write_terraform_cli_config(dir: &Path, mirror: &Path) -> PathBuf {
    let cache = dir.join("plugin-cache");
    std::fs::create_dir_all(&cache).unwrap();
    let path = dir.join("terraformrc");
    std::fs::write(
        &path,
        format!(
            "provider_installation {{\n  filesystem_mirror {{\n    path    = \"{}\"\n    include = [\"registry.terraform.io/hashicorp/*\"]\n  }}\n}}\nplugin_cache_dir = \"{}\"\n",
            mirror.display(),
            cache.display()
        ),
    )
    .unwrap();
    path
}

/// A terraform command with a CLI config and no prompts or colour.
pub fn terraform(cli_config: &Path, dir: &Path) -> Command {
    let mut command = Command::new("terraform");
    command
        .current_dir(dir)
        .env("TF_CLI_CONFIG_FILE", cli_config)
        .env("TF_IN_AUTOMATION", "1")
        .env("TF_INPUT", "0")
        .env("CHECKPOINT_DISABLE", "1");
    command
}

/// Whether tests must fail (rather than be ignored) when a tool is missing: set in CI.
pub fn tools_required() -> bool {
    std::env::var_os("CTFIX_REQUIRE_TOOLS").is_some_and(|v| v != "0" && !v.is_empty())
}

/// Gives a test what it needs, or reports it skipped. libtest cannot mark a test ignored once
/// it runs, so a test without its capability (`Err(reason)`):
/// - fails under `CTFIX_REQUIRE_TOOLS=1` (CI: nothing may be skipped there);
/// - otherwise prints `SKIPPED <test>: <reason>` straight to stderr (not captured, so it shows
///   even though libtest counts the test as passed) and appends the same line to the file
///   named by `CTFIX_SKIP_LOG`, from which `scripts/test` counts it as skipped, not passed.
///
/// Use: `let Some(x) = require(capability()) else { return };`.
pub fn require<T>(capability: Result<T, String>) -> Option<T> {
    use std::io::Write;
    let reason = match capability {
        Ok(value) => return Some(value),
        Err(reason) => reason,
    };
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    if tools_required() {
        panic!("{test}: CTFIX_REQUIRE_TOOLS is set and the test cannot run: {reason}");
    }
    let line = format!("SKIPPED {test}: {reason}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
    if let Some(log) = std::env::var_os("CTFIX_SKIP_LOG") {
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = file.write_all(line.as_bytes());
        }
    }
    None
}

/// `Ok` when `program` runs (`program args…` exits 0), else why not.
pub fn command_works(program: &str, args: &[&str]) -> Result<(), String> {
    match Command::new(program).args(args).output() {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Err(error) => Err(format!("`{program}` is not installed: {error}")),
    }
}

/// A `.tf` file holding one trail without `kms_key_id`, labelled `label`.
pub fn trail_tf(label: &str) -> String {
    format!(
        "resource \"aws_cloudtrail\" \"{label}\" {{\n  name           = \"{label}\"\n  s3_bucket_name = \"audit-logs\"\n}}\n"
    )
}

/// Writes `dir/main.tf` holding [`trail_tf`] (creating `dir`) and returns its path.
pub fn write_trail_module(dir: &Path, label: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("main.tf");
    std::fs::write(&path, trail_tf(label)).unwrap();
    path
}

/// Every file under `root` (hidden ones too, links not followed) with its bytes; a link is
/// listed with its target's path as content, prefixed by `-> `.
pub fn snapshot_all(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let file_type = entry.file_type().unwrap();
            if file_type.is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.push((rel, format!("-> {}", target.display()).into_bytes()));
            } else if file_type.is_dir() {
                stack.push(path);
            } else {
                out.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Temporary files ctfix left under `root` (`.ctfix-*.tmp`).
pub fn leftover_temp_files(root: &Path) -> Vec<PathBuf> {
    snapshot_all(root)
        .into_iter()
        .map(|(path, _)| path)
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(".ctfix-") && n.ends_with(".tmp"))
        })
        .collect()
}

/// Runs `chattr <flag> path`; `false` when chattr is missing or the file system refuses.
pub fn chattr(flag: &str, path: &Path) -> bool {
    Command::new("chattr")
        .arg(flag)
        .arg(path)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Makes a path immutable (`chattr +i`, which binds root too) until dropped.
pub struct Immutable(PathBuf);

impl Immutable {
    /// Why not, when the attribute cannot be set here (no chattr, no capability, tmpfs…).
    pub fn set(path: &Path) -> Result<Immutable, String> {
        if chattr("+i", path) {
            Ok(Immutable(path.to_path_buf()))
        } else {
            Err(format!(
                "`chattr +i {}` failed (chattr missing, no CAP_LINUX_IMMUTABLE, or a file system without the attribute)",
                path.display()
            ))
        }
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        chattr("-i", &self.0);
    }
}

/// The output's stderr as text.
pub fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A temporary directory in memory (`/dev/shm`) when there is one, else the usual one: for
/// tests that create many files or large ones, which a busy disk makes slow.
pub fn memory_tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::Builder::new().prefix("ctfix-").tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::tempdir().unwrap()
}
