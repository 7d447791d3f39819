//! The fixture harness: every `fixtures/<case>/` is run through the built binary.
//!
//! A case is either `input.tf` (one file, copied as `main.tf`) or `input/` (a module tree),
//! with `expected.tf` / `expected/` holding the tree after `ctfix --apply --yes` (absent:
//! must stay unchanged), and `findings` listing what the check must report, one
//! `<resource> <status> <reason>` or `error <file>:<line>:<column>` per line. An optional
//! `args` file adds arguments (one per line); `no-validate` (holding the reason) skips
//! `terraform validate` for inputs that are deliberately invalid. An optional `ctfix.toml` is
//! copied to the module as `.ctfix.toml`, so every trial runs under that configuration.
//!
//! Trials per case:
//! - `fix::<case>`: findings and exit code of the check; the check writes nothing; the
//!   applied tree equals the expected one; every output file re-parses; no input line
//!   changes except a replaced `kms_key_id` value (or an opened one-line body); a second run
//!   finds nothing to fix and changes nothing.
//! - `fmt::<case>`: files `terraform fmt` found clean stay clean.
//! - `validate::<case>`: the fixed tree passes `terraform init` + `terraform validate` with the
//!   AWS provider from the local mirror.
//!
//! `fmt` and `validate` apply the fix with the case's `args` too, so an unsafe fix that a case
//! selects is the one formatted and validated.
//!
//! `CTFIX_BLESS=1` rewrites `expected*` and `findings` from the actual output (review the
//! diff before committing); `CTFIX_BLESS=0` or empty does not. The exit status of the check
//! and of `--apply --yes` are checked too.

mod support;

use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Failed, Trial};
use similar::TextDiff;
use support::*;

struct Case {
    name: String,
    dir: PathBuf,
    single_file: bool,
    args: Vec<String>,
    no_validate: Option<String>,
}

impl Case {
    fn input(&self) -> PathBuf {
        self.dir.join(if self.single_file {
            "input.tf"
        } else {
            "input"
        })
    }

    fn expected(&self) -> PathBuf {
        self.dir.join(if self.single_file {
            "expected.tf"
        } else {
            "expected"
        })
    }

    /// A fresh copy of the input in a temporary directory.
    fn materialize(&self) -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("module");
        if self.single_file {
            std::fs::create_dir_all(&root).unwrap();
            std::fs::copy(self.input(), root.join("main.tf")).unwrap();
        } else {
            copy_tree(&self.input(), &root);
        }
        let config = self.dir.join("ctfix.toml");
        if config.is_file() {
            std::fs::copy(config, root.join(".ctfix.toml")).unwrap();
        }
        tmp
    }

    /// The expected tree as `(relative path, bytes)`; `None` when the input must stay as is.
    fn expected_tree(&self) -> Option<Vec<(PathBuf, Vec<u8>)>> {
        let expected = self.expected();
        if !expected.exists() {
            return None;
        }
        Some(if self.single_file {
            vec![(PathBuf::from("main.tf"), std::fs::read(expected).unwrap())]
        } else {
            list_files(&expected)
                .into_iter()
                .map(|rel| {
                    let bytes = std::fs::read(expected.join(&rel)).unwrap();
                    (rel, bytes)
                })
                .collect()
        })
    }

    fn expected_findings(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("findings"))
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect()
    }
}

fn cases() -> Vec<Case> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut cases = Vec::new();
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        let single_file = dir.join("input.tf").is_file();
        if !single_file && !dir.join("input").is_dir() {
            continue; // not a fixture pair (e.g. the demo tree)
        }
        let args = std::fs::read_to_string(dir.join("args"))
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.trim().to_owned())
            .collect();
        let no_validate = std::fs::read_to_string(dir.join("no-validate")).ok();
        cases.push(Case {
            name: dir.file_name().unwrap().to_string_lossy().into_owned(),
            dir,
            single_file,
            args,
            no_validate,
        });
    }
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    cases
}

/// `CTFIX_BLESS=1` (any value but empty or `0`).
fn bless() -> bool {
    std::env::var_os("CTFIX_BLESS").is_some_and(|v| !v.is_empty() && v != "0")
}

/// `<resource> <status> <reason>` and `error <file>:<line>:<column>` lines from a JSON report.
fn summarize(json: &serde_json::Value, root: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for finding in json["findings"].as_array().unwrap() {
        lines.push(format!(
            "{} {} {}",
            finding["resource"].as_str().unwrap(),
            finding["status"].as_str().unwrap(),
            finding["reason"].as_str().unwrap()
        ));
    }
    let root_text = format!("{}/", root.display());
    for error in json["errors"].as_array().unwrap() {
        let path = error["path"].as_str().unwrap();
        lines.push(format!(
            "error {}:{}:{}",
            path.strip_prefix(&root_text).unwrap_or(path),
            error["line"],
            error["column"]
        ));
    }
    lines
}

fn run_json(args: &[String], extra: &[&str], root: &Path) -> (i32, serde_json::Value) {
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.extend_from_slice(extra);
    all.extend_from_slice(&["--format", "json"]);
    let output = run_ctfix(&all, root);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "ctfix printed no JSON ({e}); stderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap_or(-1), json)
}

/// `ctfix --apply --yes` with the case's own arguments (`--unsafe-fixes`), as the expected
/// tree was made; an error status is a failure unless the case expects errors.
fn apply(case: &Case, root: &Path) -> Result<(), Failed> {
    let mut args: Vec<&str> = case.args.iter().map(String::as_str).collect();
    args.extend_from_slice(&["--apply", "--yes"]);
    let output = run_ctfix(&args, root);
    let errors_expected = case
        .expected_findings()
        .iter()
        .any(|l| l.starts_with("error "));
    match output.status.code() {
        Some(0 | 1) => Ok(()),
        Some(2) if errors_expected => Ok(()),
        other => Err(format!(
            "--apply --yes exited {other:?}:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into()),
    }
}

fn check_fix(case: &Case) -> Result<(), Failed> {
    let tmp = case.materialize();
    let root = tmp.path().join("module");
    let input = snapshot(&root);

    // The check: findings, exit code, nothing written.
    let (code, json) = run_json(&case.args, &[], &root);
    let actual = summarize(&json, &root);
    if bless() {
        let mut text = actual.join("\n");
        text.push('\n');
        std::fs::write(case.dir.join("findings"), text).unwrap();
    } else {
        let expected = case.expected_findings();
        if actual != expected {
            return Err(format!(
                "findings differ\nexpected:\n{}\nactual:\n{}",
                expected.join("\n"),
                actual.join("\n")
            )
            .into());
        }
    }
    let expected_code = if actual.iter().any(|l| l.starts_with("error ")) {
        2
    } else if actual.iter().any(|l| l.contains(" noncompliant ")) {
        1
    } else {
        0
    };
    if code != expected_code {
        return Err(format!("check exited {code}, expected {expected_code}").into());
    }
    if snapshot(&root) != input {
        return Err("the check (without --apply) changed files".into());
    }

    // Apply.
    let (applied_code, applied) = run_json(&case.args, &["--apply", "--yes"], &root);
    // The status after --apply: the check's errors stay errors (2); trails left unfixed (no
    // fix, or one not selected) are findings (1); otherwise 0. Writing adds no error.
    let unfixed = applied["findings"].as_array().unwrap().iter().any(|f| {
        f["status"] == "noncompliant" && f["fix"]["applied"] != serde_json::Value::Bool(true)
    });
    let apply_code = if expected_code == 2 {
        2
    } else if unfixed {
        1
    } else {
        0
    };
    if applied_code != apply_code {
        return Err(format!(
            "--apply --yes exited {applied_code}, expected {apply_code}: {}",
            applied["errors"]
        )
        .into());
    }
    if applied["errors"].as_array().unwrap().len() != json["errors"].as_array().unwrap().len() {
        return Err(format!("--apply --yes reported new errors: {}", applied["errors"]).into());
    }
    let output = snapshot(&root);
    if bless() {
        let expected = case.expected();
        if output == input {
            // Unchanged: no expected tree (a stale one would contradict the case).
            let _ = std::fs::remove_file(&expected);
            let _ = std::fs::remove_dir_all(&expected);
        } else if case.single_file {
            std::fs::write(&expected, &output[0].1).unwrap();
        } else {
            let _ = std::fs::remove_dir_all(&expected);
            copy_tree(&root, &expected);
        }
    } else {
        let expected = case.expected_tree().unwrap_or_else(|| input.clone());
        if output != expected {
            let mut message = String::from("applied tree differs from expected\n");
            for ((path, got), (_, want)) in output.iter().zip(&expected) {
                if got != want {
                    message.push_str(&format!("--- {}\n", path.display()));
                    let want = String::from_utf8_lossy(want);
                    let got = String::from_utf8_lossy(got);
                    message.push_str(
                        &TextDiff::from_lines(&want, &got)
                            .unified_diff()
                            .header("expected", "actual")
                            .to_string(),
                    );
                }
            }
            if output.len() != expected.len() {
                message.push_str("(file lists differ)\n");
            }
            return Err(message.into());
        }
    }

    // Invariants on the applied tree.
    for ((path, before), (_, after)) in input.iter().zip(&output) {
        if before == after {
            continue;
        }
        let after_text = std::str::from_utf8(after)
            .map_err(|_| format!("{}: output is not UTF-8", path.display()))?;
        // ctfix's own parser: it accepts what Terraform does and hcl-edit alone does not
        // (repeated object keys).
        let reparsed = ctfix::parse::SourceFile::from_bytes(path.clone(), after.clone())
            .and_then(|source| ctfix::parse::parse_source(&source));
        if let Err(error) = reparsed {
            return Err(format!("{}: output does not parse:\n{error}", path.display()).into());
        }
        if before.starts_with(b"\xef\xbb\xbf") != after.starts_with(b"\xef\xbb\xbf") {
            return Err(format!("{}: BOM changed", path.display()).into());
        }
        let before_text = String::from_utf8_lossy(before);
        check_lines_kept(&before_text, after_text)
            .map_err(|error| format!("{}: {error}", path.display()))?;
    }
    if applied["summary"]["files_written"] != applied["summary"]["files_changed"] {
        return Err(format!("apply did not write every change: {}", applied["summary"]).into());
    }

    // Idempotence: a second run finds nothing to fix and changes nothing.
    let (code, again) = run_json(&case.args, &["--apply", "--yes"], &root);
    let changes = again["changes"].as_array().unwrap();
    if !changes.is_empty() {
        return Err(format!("second run still changes files: {}", again["changes"]).into());
    }
    if snapshot(&root) != output {
        return Err("second run changed files".into());
    }
    let has_errors = !again["errors"].as_array().unwrap().is_empty();
    let fixable_left = again["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["status"] == "noncompliant" && f["fix"]["applicability"] == "safe");
    if fixable_left {
        return Err(format!("second run still finds safe fixes: {}", again["findings"]).into());
    }
    if code == 2 && !has_errors {
        return Err("second run exited 2 without errors".into());
    }
    Ok(())
}

/// Files `terraform fmt -check` lists as unformatted, or the error.
fn unformatted(root: &Path) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for rel in list_files(root) {
        if rel.extension().is_none_or(|e| e != "tf") {
            continue;
        }
        let output = std::process::Command::new("terraform")
            .args(["fmt", "-check", "-list=false"])
            .arg(root.join(&rel))
            .env("TF_CLI_CONFIG_FILE", "/dev/null")
            .output()
            .map_err(|e| e.to_string())?;
        match output.status.code() {
            Some(0) => {}
            Some(3) => out.push(rel.display().to_string()),
            // 2: a syntax error terraform also sees (a deliberately broken fixture).
            Some(2) => out.push(format!("{} (syntax error)", rel.display())),
            other => return Err(format!("terraform fmt exited {other:?}")),
        }
    }
    Ok(out)
}

fn check_fmt(case: &Case) -> Result<(), Failed> {
    let tmp = case.materialize();
    let root = tmp.path().join("module");
    let before = unformatted(&root)?;
    apply(case, &root)?;
    let after = unformatted(&root)?;
    let newly: Vec<_> = after.iter().filter(|f| !before.contains(f)).collect();
    if newly.is_empty() {
        Ok(())
    } else {
        let diff = std::process::Command::new("terraform")
            .args(["fmt", "-check", "-diff", "-recursive"])
            .arg(&root)
            .env("TF_CLI_CONFIG_FILE", "/dev/null")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        Err(format!("ctfix made fmt-clean files unclean: {newly:?}\n{diff}").into())
    }
}

fn check_validate(case: &Case, mirror: &Path) -> Result<(), Failed> {
    let tmp = case.materialize();
    let root = tmp.path().join("module");
    apply(case, &root)?;
    let config = write_terraform_cli_config(tmp.path(), mirror);
    let init = terraform(&config, &root)
        .args(["init", "-backend=false", "-input=false", "-no-color"])
        .output()
        .map_err(|e| e.to_string())?;
    if !init.status.success() {
        return Err(format!(
            "terraform init failed:\n{}{}",
            String::from_utf8_lossy(&init.stdout),
            String::from_utf8_lossy(&init.stderr)
        )
        .into());
    }
    let validate = terraform(&config, &root)
        .args(["validate", "-no-color"])
        .output()
        .map_err(|e| e.to_string())?;
    if !validate.status.success() {
        return Err(format!(
            "terraform validate failed:\n{}{}\n--- fixed tree main file ---\n{}",
            String::from_utf8_lossy(&validate.stdout),
            String::from_utf8_lossy(&validate.stderr),
            std::fs::read_to_string(root.join("main.tf")).unwrap_or_default()
        )
        .into());
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let terraform_reason = terraform_missing();
    let mirror = provider_mirror();
    let required = tools_required();
    let mut trials = Vec::new();
    for case in cases() {
        let case = std::sync::Arc::new(case);
        let name = case.name.clone();
        {
            let case = case.clone();
            trials.push(Trial::test(format!("fix::{name}"), move || {
                check_fix(&case)
            }));
        }
        {
            let case = case.clone();
            let reason = terraform_reason.clone();
            let mut trial = Trial::test(format!("fmt::{name}"), move || match &reason {
                Some(reason) => Err(format!("terraform is required here: {reason}").into()),
                None => check_fmt(&case),
            });
            if let (Some(reason), false) = (&terraform_reason, required) {
                eprintln!("SKIPPED fmt::{name}: {reason}");
                trial = trial.with_ignored_flag(true);
            }
            trials.push(trial);
        }
        {
            let case = case.clone();
            let missing = terraform_reason.clone().or_else(|| mirror.clone().err());
            let mirror = mirror.clone().unwrap_or_default();
            let no_validate = case.no_validate.is_some();
            let mut trial = Trial::test(format!("validate::{name}"), {
                let missing = missing.clone();
                move || match &missing {
                    Some(reason) => {
                        Err(format!("terraform validate is required here: {reason}").into())
                    }
                    None => check_validate(&case, &mirror),
                }
            });
            if no_validate {
                trial = trial.with_ignored_flag(true);
            } else if let (Some(reason), false) = (&missing, required) {
                eprintln!("SKIPPED validate::{name}: {reason}");
                trial = trial.with_ignored_flag(true);
            }
            trials.push(trial);
        }
    }
    libtest_mimic::run(&args, trials).exit();
}
