//! Helpers shared by the integration tests: running the built binary, copying trees, and the
//! external tools (terraform) some checks need.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
