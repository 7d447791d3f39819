//! `--format sarif`: the report as SARIF 2.1.0, for code-scanning dashboards (GitHub code
//! scanning, Azure DevOps, IDEs).
//!
//! One result per trail that is noncompliant (`error`), unknown (`warning`) or suppressed
//! (`error` with an in-source suppression, which dashboards show as dismissed); compliant trails
//! are not results. A module's selected fixes travel as SARIF `fixes[]` on the first of its
//! fixed trails: one replacement per changed hunk, located by byte offset in the file as it is
//! on disk, so a consumer applying them gets exactly the bytes `--apply` would write.
//!
//! Artifact URIs hold up in code scanning for any path argument: a relative path is a
//! percent-encoded relative reference against `%SRCROOT%` (the directory ctfix ran in, given
//! in `originalUriBaseIds`), an absolute one inside that directory is made relative to it,
//! and any other is a `file://` URI. Each result's `partialFingerprints` names the file and
//! the resource, not the line, so an alert keeps its identity when lines shift.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{json, Value};
use similar::{DiffOp, TextDiff};

use crate::model::{FileChange, Finding, Report, Status, RULE_ID};
use crate::render::display_path;

/// Writes the SARIF log, followed by a newline.
pub fn write_sarif(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    let log = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [sarif_run(report)],
    });
    serde_json::to_writer_pretty(&mut *out, &log)?;
    writeln!(out)
}

/// One SARIF run: the tool, the invocation (with the report's errors) and the results.
pub fn sarif_run(report: &Report) -> Value {
    let mut results = Vec::new();
    let mut modules_with_fix: Vec<PathBuf> = Vec::new();
    for finding in &report.findings {
        let level = match finding.status {
            Status::Compliant => continue,
            Status::Noncompliant | Status::Suppressed => "error",
            Status::Unknown => "warning",
        };
        let mut result = json!({
            "ruleId": RULE_ID,
            "level": level,
            "message": { "text": format!("{}: {}", finding.resource, finding.message) },
            "locations": [location(finding)],
            "partialFingerprints": {
                "ctfixResource/v1": format!("{}:{}", display_path(&finding.path), finding.resource),
            },
            "properties": { "reason": finding.reason, "status": finding.status.as_str() },
        });
        if !finding.via.is_empty() {
            result["relatedLocations"] = finding
                .via
                .iter()
                .enumerate()
                .map(|(id, site)| {
                    json!({
                        "id": id,
                        "message": { "text": format!("called as {}", site.module) },
                        "physicalLocation": {
                            "artifactLocation": artifact_location(&site.path),
                            "region": { "startLine": site.line, "startColumn": site.column },
                        },
                    })
                })
                .collect();
        }
        if let Some(suppression) = &finding.suppression {
            result["suppressions"] = json!([{
                "kind": "inSource",
                "justification": suppression.reason.clone().unwrap_or_else(|| suppression.comment.clone()),
            }]);
        }
        if let Some(fix) = &finding.fix {
            result["properties"]["fix"] = json!({
                "title": fix.title,
                "applicability": fix.applicability.as_str(),
            });
            // A call-site fix changes the calling module: the innermost call site's
            // directory that has changes.
            let module = finding
                .via
                .iter()
                .rev()
                .filter_map(|site| site.path.parent())
                .find(|dir| report.changes.iter().any(|c| c.path.parent() == Some(*dir)))
                .unwrap_or_else(|| finding.path.parent().unwrap_or(Path::new("")));
            if fix.selected && !modules_with_fix.iter().any(|m| m == module) {
                let changes: Vec<&FileChange> = report
                    .changes
                    .iter()
                    .filter(|c| c.path.parent() == Some(module))
                    .collect();
                if !changes.is_empty() {
                    modules_with_fix.push(module.to_path_buf());
                    result["fixes"] = json!([{
                        "description": { "text": module_titles(report, module) },
                        "artifactChanges": changes.iter().map(|c| artifact_change(c)).collect::<Vec<_>>(),
                    }]);
                }
            }
        }
        results.push(result);
    }
    json!({
        "tool": { "driver": {
            "name": "ctfix",
            "version": env!("CARGO_PKG_VERSION"),
            "rules": [rule()],
        }},
        "columnKind": "unicodeCodePoints",
        "originalUriBaseIds": original_uri_base_ids(),
        "invocations": [invocation(report)],
        "results": results,
    })
}

/// The SARIF log's opening, up to the `runs` array's first element (a fleet run writes one run
/// per repository after it, separated by commas, then [`LOG_END`]).
pub const LOG_START: &str =
    "{\n  \"$schema\": \"https://json.schemastore.org/sarif-2.1.0.json\",\n  \"version\": \"2.1.0\",\n  \"runs\": [\n";
/// The SARIF log's end, after the last run.
pub const LOG_END: &str = "\n  ]\n}\n";

/// The run itself: whether it went without errors, and each error (a file that does not
/// parse, a refusal) as a notification, so a dashboard shows what ctfix could not check.
fn invocation(report: &Report) -> Value {
    let notifications: Vec<Value> = report
        .errors
        .iter()
        .map(|error| {
            let mut region = json!({});
            if let (Some(line), Some(column)) = (error.line, error.column) {
                region = json!({ "startLine": line, "startColumn": column });
            }
            let mut location = json!({
                "physicalLocation": { "artifactLocation": artifact_location(&error.path) }
            });
            if region != json!({}) {
                location["physicalLocation"]["region"] = region;
            }
            json!({
                "level": "error",
                "message": { "text": error.message.lines().next().unwrap_or_default() },
                "locations": [location],
            })
        })
        .collect();
    json!({
        "executionSuccessful": report.errors.is_empty(),
        "toolExecutionNotifications": notifications,
    })
}

fn rule() -> Value {
    json!({
        "id": RULE_ID,
        "name": "CloudTrailLogsEncryptedWithCustomerManagedKey",
        "shortDescription": { "text": "CloudTrail logs should be encrypted with a customer-managed KMS key" },
        "fullDescription": { "text": "aws_cloudtrail must set kms_key_id to the ARN of a customer-managed KMS key whose policy lets cloudtrail.amazonaws.com call kms:GenerateDataKey* and kms:DescribeKey (Checkov CKV_AWS_35, Trivy AWS-0015, KICS 5d9e3164-9265-470c-9a10-57ae454ac0c7, Security Hub CloudTrail.2, AWS Config CLOUD_TRAIL_ENCRYPTION_ENABLED, Prowler cloudtrail_kms_encryption_enabled)." },
        "help": { "text": crate::explain::CONTROL },
        "defaultConfiguration": { "level": "error" },
        "properties": { "tags": ["security", "terraform", "aws", "cloudtrail", "kms",
                                  "CKV_AWS_35", "AWS-0015", "CloudTrail.2"] },
    })
}

fn location(finding: &Finding) -> Value {
    json!({ "physicalLocation": {
        "artifactLocation": artifact_location(&finding.path),
        "region": { "startLine": finding.line, "startColumn": finding.column },
    }})
}

/// The base relative URIs resolve against: the directory ctfix ran in.
const SRCROOT: &str = "%SRCROOT%";

fn original_uri_base_ids() -> Value {
    match std::env::current_dir() {
        Ok(dir) => {
            json!({ SRCROOT: { "uri": format!("{}/", file_uri(&dir).trim_end_matches('/')) } })
        }
        Err(_) => json!({}),
    }
}

/// A path as a SARIF `artifactLocation`: a relative reference against `%SRCROOT%` when the
/// path is relative (or absolute inside the current directory), else a `file://` URI.
fn artifact_location(path: &Path) -> Value {
    let relative = if path.is_absolute() {
        std::env::current_dir()
            .ok()
            .and_then(|dir| path.strip_prefix(dir).ok().map(Path::to_path_buf))
    } else {
        Some(path.to_path_buf())
    };
    match relative {
        Some(relative) => json!({
            "uri": percent_encode(&display_path(&relative)),
            "uriBaseId": SRCROOT,
        }),
        None => json!({ "uri": file_uri(path) }),
    }
}

/// `file:///…` for an absolute path.
fn file_uri(path: &Path) -> String {
    let shown = display_path(path).replace('\\', "/");
    let shown = shown.strip_prefix('/').unwrap_or(&shown);
    format!("file:///{}", percent_encode(shown))
}

/// Percent-encodes everything but unreserved characters and `/` (RFC 3986).
fn percent_encode(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(byte as char)
            }
            // A Windows drive letter's colon (`C:/…`) stays.
            b':' if out.len() == 1 => out.push(':'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// The fix titles of a module's selected fixes, one per line.
fn module_titles(report: &Report, module: &Path) -> String {
    report
        .findings
        .iter()
        .filter(|f| {
            f.path.parent() == Some(module)
                || f.via.iter().any(|site| site.path.parent() == Some(module))
        })
        .filter_map(|f| f.fix.as_ref().filter(|fix| fix.selected))
        .map(|fix| fix.title.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A file's change as SARIF replacements: one per changed run of lines, by byte offset into
/// the file as read (byte order mark included).
fn artifact_change(change: &FileChange) -> Value {
    let before = String::from_utf8_lossy(&change.before);
    let after = String::from_utf8_lossy(&change.after);
    let old_lines: Vec<&str> = before.split_inclusive('\n').collect();
    let new_lines: Vec<&str> = after.split_inclusive('\n').collect();
    let diff = TextDiff::configure().diff_slices(&old_lines, &new_lines);
    let offsets = |lines: &[&str]| -> Vec<usize> {
        let mut at = vec![0];
        for line in lines {
            at.push(at.last().copied().unwrap_or(0) + line.len());
        }
        at
    };
    let old_at = offsets(&old_lines);
    let new_at = offsets(&new_lines);
    let replacements: Vec<Value> = diff
        .ops()
        .iter()
        .filter(|op| !matches!(op, DiffOp::Equal { .. }))
        .map(|op| {
            let (old, new) = (op.old_range(), op.new_range());
            let inserted = &after[new_at[new.start]..new_at[new.end]];
            json!({
                "deletedRegion": {
                    "byteOffset": old_at[old.start],
                    "byteLength": old_at[old.end] - old_at[old.start],
                },
                // A byte region's replacement must come as `binary` (SARIF §3.57.3); `text`
                // is there for people and for tools that only read text.
                "insertedContent": {
                    "text": inserted,
                    "binary": base64::engine::general_purpose::STANDARD.encode(inserted),
                },
            })
        })
        .collect();
    json!({
        "artifactLocation": artifact_location(&change.path),
        "replacements": replacements,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies SARIF replacements (sorted by offset) to `before`.
    fn apply(before: &[u8], change: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        let mut at = 0;
        for replacement in change["replacements"].as_array().unwrap() {
            let offset = replacement["deletedRegion"]["byteOffset"].as_u64().unwrap() as usize;
            let length = replacement["deletedRegion"]["byteLength"].as_u64().unwrap() as usize;
            out.extend_from_slice(&before[at..offset]);
            out.extend_from_slice(
                replacement["insertedContent"]["text"]
                    .as_str()
                    .unwrap()
                    .as_bytes(),
            );
            at = offset + length;
        }
        out.extend_from_slice(&before[at..]);
        out
    }

    #[test]
    fn replacements_rebuild_the_written_bytes() {
        let before = "\u{feff}resource \"aws_cloudtrail\" \"t\" {\r\n  name = \"t\"\r\n}\r\n# end";
        let after = "\u{feff}resource \"aws_cloudtrail\" \"t\" {\r\n  name       = \"t\"\r\n  kms_key_id = k\r\n}\r\n# end\nmore";
        let change = FileChange {
            path: "m/main.tf".into(),
            before: before.as_bytes().to_vec(),
            after: after.as_bytes().to_vec(),
            written: false,
            module: "m".into(),
        };
        let sarif = artifact_change(&change);
        assert_eq!(sarif["artifactLocation"]["uri"], "m/main.tf");
        assert_eq!(sarif["artifactLocation"]["uriBaseId"], "%SRCROOT%");
        assert_eq!(apply(before.as_bytes(), &sarif), after.as_bytes());
        for replacement in sarif["replacements"].as_array().unwrap() {
            let content = &replacement["insertedContent"];
            let binary = base64::engine::general_purpose::STANDARD
                .decode(content["binary"].as_str().unwrap())
                .unwrap();
            assert_eq!(binary, content["text"].as_str().unwrap().as_bytes());
        }
    }

    #[test]
    fn uris_are_valid_for_any_path() {
        assert_eq!(
            artifact_location(Path::new("my infra/main.tf")),
            json!({"uri": "my%20infra/main.tf", "uriBaseId": "%SRCROOT%"})
        );
        assert_eq!(
            artifact_location(Path::new("/nowhere/x#1/main.tf")),
            json!({"uri": "file:///nowhere/x%231/main.tf"})
        );
        let inside = std::env::current_dir().unwrap().join("live/main.tf");
        assert_eq!(
            artifact_location(&inside),
            json!({"uri": "live/main.tf", "uriBaseId": "%SRCROOT%"})
        );
    }
}
