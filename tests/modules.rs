//! Module calls through the built binary where the fixture harness cannot go: a registry
//! module downloaded under `.terraform/modules/` (written here the way `terraform init`
//! writes it, since the tests run offline), and the `via` field in JSON and SARIF.
//!
//! Trials needing terraform report themselves ignored (with the reason) when it is missing,
//! and fail when `CTFIX_REQUIRE_TOOLS=1`.

mod support;

use std::path::Path;

use libtest_mimic::{Arguments, Failed, Trial};
use support::*;

const TRAIL_MODULE: &str = r#"variable "name" {
  type = string
}

variable "bucket" {
  type = string
}

variable "kms_key_arn" {
  type    = string
  default = ""
}

resource "aws_cloudtrail" "this" {
  name           = var.name
  s3_bucket_name = var.bucket
  kms_key_id     = var.kms_key_arn
}
"#;

const ROOT: &str = r#"provider "aws" {
  region = "us-east-1"
}

module "org_trail" {
  source  = "acme/cloudtrail/aws"
  version = "1.2.0"
  name    = "org"
  bucket  = "org-logs"
}
"#;

/// A root calling a registry module that `terraform init` downloaded.
fn write_downloaded(root: &Path) {
    std::fs::create_dir_all(root.join(".terraform/modules/org_trail")).unwrap();
    std::fs::write(root.join("main.tf"), ROOT).unwrap();
    std::fs::write(
        root.join(".terraform/modules/org_trail/main.tf"),
        TRAIL_MODULE,
    )
    .unwrap();
    std::fs::write(
        root.join(".terraform/modules/modules.json"),
        r#"{"Modules":[{"Key":"","Source":"","Dir":"."},{"Key":"org_trail","Source":"registry.terraform.io/acme/cloudtrail/aws","Version":"1.2.0","Dir":".terraform/modules/org_trail"}]}"#,
    )
    .unwrap();
}

fn json_of(args: &[&str], root: &Path) -> (i32, serde_json::Value) {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let output = run_ctfix(&all, root);
    let json = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&output.stderr)));
    (output.status.code().unwrap_or(-1), json)
}

/// The downloaded copy is judged with the call's arguments and fixed at the call site;
/// nothing under `.terraform/` changes; a second run finds it compliant.
fn downloaded_registry_module_is_fixed_at_the_call_site() -> Result<(), Failed> {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("live");
    write_downloaded(&root);
    let dot_terraform = snapshot_all(&root.join(".terraform"));
    let (code, json) = json_of(&[], &root);
    let finding = &json["findings"][0];
    if code != 1
        || json["findings"].as_array().unwrap().len() != 1
        || finding["resource"] != "module.org_trail.aws_cloudtrail.this"
        || finding["status"] != "noncompliant"
        || !finding["path"]
            .as_str()
            .unwrap()
            .ends_with(".terraform/modules/org_trail/main.tf")
        || !finding["via"][0]["path"]
            .as_str()
            .unwrap()
            .ends_with("live/main.tf")
        || finding["via"][0]["line"] != 5
        || finding["via"][0]["module"] != "module.org_trail"
        || finding["fix"]["applicability"] != "safe"
    {
        return Err(format!("unexpected check (exit {code}): {json:#}").into());
    }
    let (code, applied) = json_of(&["--apply", "--yes"], &root);
    if code != 0 {
        return Err(format!("apply exited {code}: {applied:#}").into());
    }
    if snapshot_all(&root.join(".terraform")) != dot_terraform {
        return Err("ctfix changed files under .terraform/".into());
    }
    let fixed = std::fs::read_to_string(root.join("main.tf")).unwrap();
    if !fixed.contains("  kms_key_arn = aws_kms_key.org_trail_key.arn\n")
        || !fixed.starts_with(ROOT.trim_end_matches("}\n"))
    {
        return Err(format!("unexpected fixed root:\n{fixed}").into());
    }
    let source = ctfix::parse::SourceFile::from_bytes(root.join("main.tf"), fixed.into_bytes())
        .map_err(|e| e.to_string())?;
    ctfix::parse::parse_source(&source).map_err(|e| e.to_string())?;
    let (code, again) = json_of(&["--apply", "--yes"], &root);
    if code != 0
        || !again["changes"].as_array().unwrap().is_empty()
        || again["findings"][0]["status"] != "compliant"
    {
        return Err(format!("second run (exit {code}): {again:#}").into());
    }
    Ok(())
}

/// The fixed root initialises offline (the module is already downloaded) and validates.
fn downloaded_registry_module_fix_validates(mirror: &Path) -> Result<(), Failed> {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("live");
    write_downloaded(&root);
    json_of(&["--apply", "--yes"], &root);
    let config = write_terraform_cli_config(tmp.path(), mirror);
    for args in [
        &["init", "-backend=false", "-input=false", "-no-color"][..],
        &["validate", "-no-color"][..],
        &["fmt", "-check", "-no-color"][..],
    ] {
        let output = terraform(&config, &root)
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if !output.status.success() {
            return Err(format!(
                "terraform {args:?} failed:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
            .into());
        }
    }
    Ok(())
}

/// A registry call that names a CloudTrail module and is not downloaded is `unknown` with a
/// hint; a call to another module says nothing.
fn registry_call_not_downloaded_is_unknown() -> Result<(), Failed> {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("live");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(
        root.join("main.tf"),
        format!("{ROOT}\nmodule \"label\" {{\n  source = \"cloudposse/label/null\"\n}}\n"),
    )
    .unwrap();
    let (code, json) = json_of(&[], &root);
    let findings = json["findings"].as_array().unwrap();
    if code != 0
        || findings.len() != 1
        || findings[0]["resource"] != "module.org_trail"
        || findings[0]["status"] != "unknown"
        || findings[0]["reason"] != "module-not-downloaded"
        || !findings[0]["message"]
            .as_str()
            .unwrap()
            .contains("terraform init")
    {
        return Err(format!("unexpected (exit {code}): {json:#}").into());
    }
    Ok(())
}

/// SARIF carries the call sites as relatedLocations (URIs like every other location's), and
/// the fix of the calling module.
fn sarif_has_related_locations() -> Result<(), Failed> {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("live");
    write_downloaded(&root);
    let output = run_ctfix(&["--format", "sarif"], &root);
    let sarif: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
    let result = &sarif["runs"][0]["results"][0];
    let related = &result["relatedLocations"][0]["physicalLocation"];
    if !related["artifactLocation"]["uri"]
        .as_str()
        .unwrap_or("")
        .ends_with("live/main.tf")
        // The same URI form as every other location: a `file://` URI for a path outside
        // the current directory, never a bare path.
        || related["artifactLocation"]
            != result["fixes"][0]["artifactChanges"][0]["artifactLocation"]
        || !related["artifactLocation"]["uri"]
            .as_str()
            .unwrap_or("")
            .starts_with("file:///")
        || related["region"]["startLine"] != 5
        || !result["fixes"][0]["artifactChanges"][0]["artifactLocation"]["uri"]
            .as_str()
            .unwrap_or("")
            .ends_with("live/main.tf")
    {
        return Err(format!("unexpected SARIF result: {result:#}").into());
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let missing = terraform_missing().or_else(|| provider_mirror().err());
    let mirror = provider_mirror().unwrap_or_default();
    let mut trials = vec![
        Trial::test(
            "downloaded_registry_module_is_fixed_at_the_call_site",
            downloaded_registry_module_is_fixed_at_the_call_site,
        ),
        Trial::test(
            "registry_call_not_downloaded_is_unknown",
            registry_call_not_downloaded_is_unknown,
        ),
        Trial::test("sarif_has_related_locations", sarif_has_related_locations),
    ];
    let mut validate = Trial::test("downloaded_registry_module_fix_validates", {
        let missing = missing.clone();
        move || match &missing {
            Some(reason) => Err(format!("terraform is required here: {reason}").into()),
            None => downloaded_registry_module_fix_validates(&mirror),
        }
    });
    if let (Some(reason), false) = (&missing, tools_required()) {
        eprintln!("SKIPPED downloaded_registry_module_fix_validates: {reason}");
        validate = validate.with_ignored_flag(true);
    }
    trials.push(validate);
    libtest_mimic::run(&args, trials).exit();
}
