//! Which existing key ctfix wires, and what its fix says about the choice, through the built
//! binary on the key-choice fixtures (the fixture harness checks the bytes written; these
//! check the title, applicability and note a reviewer reads).

mod support;

use std::path::Path;

use serde_json::Value;
use support::*;

/// The single finding's `fix` for a fixture's input, checked with `--format json` (plus
/// `args`).
fn fix_of(case: &str, args: &[&str]) -> Value {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("module");
    std::fs::create_dir_all(&root).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(case);
    std::fs::copy(fixture.join("input.tf"), root.join("main.tf")).unwrap();
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let output = run_ctfix(&all, &root);
    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    let findings = json["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{json:#}");
    findings[0]["fix"].clone()
}

fn title(fix: &Value) -> &str {
    fix["title"].as_str().unwrap_or_default()
}

fn note(fix: &Value) -> &str {
    fix["note"].as_str().unwrap_or_default()
}

/// The shape found in public modules: a key for CloudTrail (alias, output, the bucket's SSE)
/// and a trail with `count`. Before, ctfix generated a second key because of the count.
#[test]
fn the_key_declared_for_cloudtrail_serves_a_trail_with_count() {
    let fix = fix_of("reuse-cloudtrail-key-with-count", &[]);
    assert_eq!(fix["applicability"], "safe", "{fix:#}");
    let title = title(&fix);
    assert!(
        title.starts_with(
            "set kms_key_id = aws_kms_key.cloudtrail.arn (existing key chosen: the module's only key"
        ),
        "{title}"
    );
    // The strongest tie is named; the alias and the output are not needed to choose.
    assert!(
        title.ends_with("; the logs bucket aws_s3_bucket.logs encrypts with it)"),
        "{title}"
    );
    assert!(fix["note"].is_null(), "{fix:#}");
}

#[test]
fn of_two_usable_keys_the_one_the_logs_bucket_encrypts_with_is_wired_safely() {
    let fix = fix_of("two-candidate-keys-bucket-decides", &[]);
    assert_eq!(fix["applicability"], "safe", "{fix:#}");
    assert!(
        title(&fix)
            .starts_with("set kms_key_id = aws_kms_key.logs.arn (existing key chosen: of 2 keys"),
        "{fix:#}"
    );
    assert!(title(&fix).contains("the logs bucket aws_s3_bucket.audit encrypts with it"));
}

#[test]
fn a_policy_document_key_in_a_crlf_file_is_wired() {
    let fix = fix_of("reuse-policy-document-key-crlf", &[]);
    assert_eq!(fix["applicability"], "safe", "{fix:#}");
    assert!(
        title(&fix).starts_with(
            "set kms_key_id = aws_kms_key.logs.arn (existing key chosen: the module's only key"
        ),
        "{fix:#}"
    );
    assert!(title(&fix).contains("the logs bucket aws_s3_bucket.audit encrypts with it"));
}

#[test]
fn two_usable_keys_with_nothing_to_choose_between_them_make_an_unsafe_fix_naming_the_other() {
    let fix = fix_of("two-candidate-keys-ambiguous", &[]);
    assert_eq!(fix["applicability"], "unsafe", "{fix:#}");
    assert_eq!(fix["selected"], false, "{fix:#}");
    assert!(
        title(&fix).starts_with("set kms_key_id = aws_kms_key.shared.arn"),
        "{fix:#}"
    );
    assert!(note(&fix).contains("aws_kms_key.logs"), "{fix:#}");
}

/// The note lets a reviewer extend the existing key instead of accepting a new one.
#[test]
fn a_key_granting_cloudtrail_only_generate_data_key_is_named_in_the_generated_keys_note() {
    let fix = fix_of("key-grants-cloudtrail-only-generate-crlf", &[]);
    assert_eq!(fix["applicability"], "safe", "{fix:#}");
    assert!(
        title(&fix).starts_with("generate aws_kms_key.audit_cloudtrail"),
        "{fix:#}"
    );
    let note = note(&fix);
    assert!(
        note.contains("aws_kms_key.logs already lets CloudTrail kms:GenerateDataKey*"),
        "{note}"
    );
    assert!(
        note.contains("no statement allowing cloudtrail.amazonaws.com kms:DescribeKey"),
        "{note}"
    );
    assert!(note.contains("kms_key_id = aws_kms_key.logs.arn"), "{note}");
}

#[test]
fn a_key_with_the_trails_own_count_is_wired_instance_by_instance() {
    let fix = fix_of("reuse-key-with-same-count", &[]);
    assert_eq!(fix["applicability"], "safe", "{fix:#}");
    assert!(
        title(&fix).starts_with("set kms_key_id = aws_kms_key.trail[count.index].arn"),
        "{fix:#}"
    );
}
