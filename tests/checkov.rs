//! A second opinion: Checkov over every fixture before and after `ctfix --apply`.
//!
//! Every fixture goes in (unchanged and `no-validate` ones too: their "after" is their input
//! or whatever ctfix writes). Checkov must report `CKV_AWS_35` passed for every trail ctfix
//! fixed (a selected fix in ctfix's JSON report) and for every trail ctfix calls compliant,
//! and no check may fail after the fix that did not fail before (the generated key must pass
//! Checkov's KMS checks: CKV_AWS_7, CKV_AWS_33, CKV_AWS_227, CKV2_AWS_64). Checkov comes from `CTFIX_CHECKOV` (a path) or `checkov` on PATH; without it
//! the trial is ignored (a failure under `CTFIX_REQUIRE_TOOLS=1`).
//! A fixture holding a `checkov-skip` file (its reason) leaves trails unfixed on purpose and
//! is left out.

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
    // (fixture, trail address, why): trails Checkov must pass CKV_AWS_35 for, after the fix.
    let mut must_pass: Vec<(String, String, &str)> = Vec::new();
    for entry in std::fs::read_dir(&fixtures).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let (input, expected, single) = if dir.join("input.tf").is_file() {
            (dir.join("input.tf"), dir.join("expected.tf"), true)
        } else if dir.join("input").is_dir() {
            (dir.join("input"), dir.join("expected"), false)
        } else {
            continue; // not a fixture pair (the demo tree)
        };
        if dir.join("checkov-skip").exists() {
            continue; // leaves trails unfixed by design (the file says why)
        }
        let target = before.join(&name);
        if single {
            std::fs::create_dir_all(&target).unwrap();
            std::fs::copy(&input, target.join("main.tf")).unwrap();
        } else {
            copy_tree(&input, &target);
        }
        // A case's configuration, as the fixture harness places it.
        if dir.join("ctfix.toml").is_file() {
            std::fs::copy(dir.join("ctfix.toml"), target.join(".ctfix.toml")).unwrap();
        }
        // "After" is what ctfix writes, with the case's arguments (`--unsafe-fixes`).
        copy_tree(&target, &after.join(&name));
        let args: Vec<String> = std::fs::read_to_string(dir.join("args"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect();
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend(["--format", "json"]);
        let check = run_ctfix(&all, &target);
        let json: serde_json::Value = serde_json::from_slice(&check.stdout)
            .map_err(|e| format!("{name}: ctfix printed no JSON: {e}"))?;
        for finding in json["findings"].as_array().unwrap() {
            if finding["path"].as_str().unwrap_or("").ends_with(".tf.json") {
                continue; // Checkov's terraform framework does not read `*.tf.json`
            }
            let resource = finding["resource"].as_str().unwrap().to_owned();
            if finding["fix"]["selected"] == true {
                must_pass.push((name.clone(), resource, "fixed"));
            } else if finding["status"] == "compliant" {
                must_pass.push((name.clone(), resource, "compliant"));
            }
        }
        all.extend(["--apply", "--yes"]);
        run_ctfix(&all, &after.join(&name));
        if !expected.exists() && snapshot(&after.join(&name)) != snapshot(&target) {
            return Err(format!("{name}: ctfix changed a fixture that must stay unchanged").into());
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
        "checkov over {} fixtures: CKV_AWS_35 passed for {trails_passing} trails, failed for {} (trails ctfix leaves); {} failed checks before the fix, {} after, {} new",
        cases.len(),
        still_35.len(),
        failed_before.len(),
        failed_after.len(),
        new_failures.len()
    );
    if !new_failures.is_empty() {
        return Err(format!("checks that fail only after the fix: {new_failures:#?}").into());
    }
    // Trails ctfix leaves (suppressed, unknown, unsafe fixes not selected, refusals) may still
    // fail CKV_AWS_35; every trail it fixed must pass (below).
    // Checkov names each instance of a counted trail (`aws_cloudtrail.x[0]`, `x["a"]`); its
    // path starts with `/<case>/`.
    let not_passing: Vec<_> = must_pass
        .iter()
        .filter(|(case, resource, _)| {
            !passed_after.iter().any(|(file, r)| {
                file.starts_with(&format!("/{case}/"))
                    && (r == resource || r.starts_with(&format!("{resource}[")))
            })
        })
        .collect();
    eprintln!(
        "checkov: CKV_AWS_35 passes for {} of {} trails ctfix fixed or calls compliant",
        must_pass.len() - not_passing.len(),
        must_pass.len()
    );
    if !not_passing.is_empty() {
        return Err(format!(
            "CKV_AWS_35 is not reported passed for these (case, trail, why): {not_passing:#?}"
        )
        .into());
    }
    Ok(())
}

/// Every module instance Checkov fails (it evaluates local module calls per instance), ctfix
/// reports noncompliant too, under the same address.
fn check_module_instances(checkov: &Path) -> Result<(), Failed> {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let tmp = tempfile::tempdir().unwrap();
    let mut cases = Vec::new();
    for entry in std::fs::read_dir(&fixtures).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("module-") && dir.join("input").is_dir() {
            copy_tree(&dir.join("input"), &tmp.path().join(&name));
            cases.push(name);
        }
    }
    let (failed, _) = run_checkov(checkov, tmp.path())?;
    let mut instances = 0;
    for (id, file, resource) in &failed {
        if id != "CKV_AWS_35" || !resource.starts_with("module.") {
            continue;
        }
        instances += 1;
        let case = file.trim_start_matches('/').split('/').next().unwrap_or("");
        let output = run_ctfix(&["--format", "json"], &tmp.path().join(case));
        let json: serde_json::Value =
            serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
        let status = json["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| f["resource"] == resource.as_str())
            .map(|f| f["status"].clone());
        if status != Some(serde_json::Value::from("noncompliant")) {
            return Err(format!(
                "{case}: Checkov fails {resource}, ctfix reports {status:?}: {json:#}"
            )
            .into());
        }
    }
    eprintln!(
        "checkov over {} module fixtures: {instances} module instances fail CKV_AWS_35, all reported noncompliant by ctfix",
        cases.len()
    );
    if instances == 0 {
        return Err("Checkov failed no module instance: the comparison proved nothing".into());
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let found = checkov();
    let mut modules = Trial::test("checkov::module_instances", {
        let found = found.clone();
        move || match &found {
            Some(path) => check_module_instances(path),
            None => Err("checkov is required here (set CTFIX_CHECKOV or put it on PATH)".into()),
        }
    });
    if found.is_none() && !tools_required() {
        eprintln!("SKIPPED checkov::module_instances: checkov not found (set CTFIX_CHECKOV=/path/to/checkov)");
        modules = modules.with_ignored_flag(true);
    }
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
    libtest_mimic::run(&args, vec![trial, modules]).exit();
}
