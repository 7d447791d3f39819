//! A second opinion: Checkov over every fixture before and after `ctfix --apply`.
//!
//! For each fixture whose fix changes files, Checkov must report `CKV_AWS_35` passed for every
//! trail ctfix made compliant, and no check may fail after the fix that did not fail before
//! (the generated key must pass Checkov's KMS checks: CKV_AWS_7, CKV_AWS_33, CKV_AWS_227,
//! CKV2_AWS_64). Checkov comes from `CTFIX_CHECKOV` (a path) or `checkov` on PATH; without it
//! the trial is ignored (a failure under `CTFIX_REQUIRE_TOOLS=1`). A fixture holding a
//! `checkov-skip` file (its reason) leaves trails unfixed on purpose and is left out.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use libtest_mimic::{Arguments, Failed, Trial};
use support::*;

fn checkov() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CTFIX_CHECKOV") {
        return Some(PathBuf::from(path));
    }
    Command::new("checkov")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| PathBuf::from("checkov"))
}

/// `(check id, file, resource)` of failed checks.
type Failures = BTreeSet<(String, String, String)>;
/// `(file, resource)` of the resources passing CKV_AWS_35.
type Passes = BTreeSet<(String, String)>;

/// Runs Checkov over `dir`: what fails, and which resources pass CKV_AWS_35.
fn run_checkov(checkov: &Path, dir: &Path) -> Result<(Failures, Passes), String> {
    let output = Command::new(checkov)
        .args(["-d"])
        .arg(dir)
        .args([
            "--framework",
            "terraform",
            "-o",
            "json",
            "--compact",
            "--skip-download",
        ])
        .env("BC_SKIP_MAPPING", "TRUE")
        .env("CHECKOV_RUN_SCA_PACKAGE_SCAN_V2", "false")
        .output()
        .map_err(|e| e.to_string())?;
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).map_err(|e| {
        format!(
            "checkov printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    let reports = match json {
        serde_json::Value::Array(items) => items,
        single => vec![single],
    };
    let mut failed = BTreeSet::new();
    let mut passed_35 = BTreeSet::new();
    for report in reports {
        let results = &report["results"];
        for check in results["failed_checks"].as_array().into_iter().flatten() {
            failed.insert((
                check["check_id"].as_str().unwrap_or("").to_owned(),
                check["file_path"].as_str().unwrap_or("").to_owned(),
                check["resource"].as_str().unwrap_or("").to_owned(),
            ));
        }
        for check in results["passed_checks"].as_array().into_iter().flatten() {
            if check["check_id"] == "CKV_AWS_35" {
                passed_35.insert((
                    check["file_path"].as_str().unwrap_or("").to_owned(),
                    check["resource"].as_str().unwrap_or("").to_owned(),
                ));
            }
        }
    }
    Ok((failed, passed_35))
}

fn check_all(checkov: &Path) -> Result<(), Failed> {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let tmp = tempfile::tempdir().unwrap();
    let (before, after) = (tmp.path().join("before"), tmp.path().join("after"));
    let mut cases = Vec::new();
    for entry in std::fs::read_dir(&fixtures).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let (input, expected, single) = if dir.join("input.tf").is_file() {
            (dir.join("input.tf"), dir.join("expected.tf"), true)
        } else {
            (dir.join("input"), dir.join("expected"), false)
        };
        if !expected.exists() || dir.join("no-validate").exists() {
            continue; // unchanged by the fix, or deliberately invalid input
        }
        if dir.join("checkov-skip").exists() {
            continue; // leaves trails unfixed by design (the file says why)
        }
        for (from, root) in [(&input, &before), (&expected, &after)] {
            let target = root.join(&name);
            if single {
                std::fs::create_dir_all(&target).unwrap();
                std::fs::copy(from, target.join("main.tf")).unwrap();
            } else {
                copy_tree(from, &target);
            }
        }
        cases.push(name);
    }
    let (failed_before, _) = run_checkov(checkov, &before)?;
    let (failed_after, passed_after) = run_checkov(checkov, &after)?;
    let new_failures: Vec<_> = failed_after.difference(&failed_before).collect();
    let still_35: Vec<_> = failed_after
        .iter()
        .filter(|(id, _, _)| id == "CKV_AWS_35")
        .collect();
    let trails_passing = passed_after
        .iter()
        .filter(|(_, r)| r.starts_with("aws_cloudtrail."))
        .count();
    eprintln!(
        "checkov over {} fixed fixtures: CKV_AWS_35 passed for {trails_passing} trails, failed for {}; {} failed checks before the fix, {} after, {} new",
        cases.len(),
        still_35.len(),
        failed_before.len(),
        failed_after.len(),
        new_failures.len()
    );
    if !new_failures.is_empty() {
        return Err(format!("checks that fail only after the fix: {new_failures:#?}").into());
    }
    if !still_35.is_empty() {
        return Err(format!("CKV_AWS_35 still fails after the fix: {still_35:#?}").into());
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let found = checkov();
    let mut trial = Trial::test("checkov::fixed_fixtures", {
        let found = found.clone();
        move || match &found {
            Some(path) => check_all(path),
            None => Err("checkov is required here (set CTFIX_CHECKOV or put it on PATH)".into()),
        }
    });
    if found.is_none() && !tools_required() {
        eprintln!("SKIPPED checkov::fixed_fixtures: checkov not found (set CTFIX_CHECKOV=/path/to/checkov)");
        trial = trial.with_ignored_flag(true);
    }
    libtest_mimic::run(&args, vec![trial]).exit();
}
