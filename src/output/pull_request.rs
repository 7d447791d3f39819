//! The words that go with a remediation: the commit message and the pull-request body
//! (Markdown), built from a [`Report`] after `--apply`. Facts about the control come from the
//! same source as `ctfix --explain`.

use std::fmt::Write as _;
use std::path::Path;

use crate::model::{Applicability, Finding, Report, Status};
use crate::vcs::Committed;

/// The pull request's title, also the commit's subject line.
pub const TITLE: &str = "Encrypt CloudTrail logs with a customer-managed KMS key";

/// How every body ctfix writes begins: `--pr-body` overwrites only a file that begins so (a
/// body of an earlier run), never one of the user's.
pub const BODY_START: &str = "ctfix found ";

/// Every tool's name for the control, for people searching their scanner's output.
const CONTROL_IDS: &str = "Checkov `CKV_AWS_35`, Trivy `AWS-0015`, KICS `5d9e3164-9265-470c-9a10-57ae454ac0c7`, Security Hub `CloudTrail.2`, AWS Config `CLOUD_TRAIL_ENCRYPTION_ENABLED`, Prowler `cloudtrail_kms_encryption_enabled`";

/// The trails this run fixed (their fix was written).
fn fixed(report: &Report) -> impl Iterator<Item = &Finding> {
    report
        .findings
        .iter()
        .filter(|f| f.fix.as_ref().is_some_and(|fix| fix.applied))
}

/// Trails still needing a human: noncompliant or unknown and not fixed by this run.
fn left(report: &Report) -> impl Iterator<Item = &Finding> {
    report.findings.iter().filter(|f| {
        matches!(f.status, Status::Noncompliant | Status::Unknown)
            && !f.fix.as_ref().is_some_and(|fix| fix.applied)
    })
}

/// The commit message: the title, then one line per fixed trail.
pub fn commit_message(report: &Report, root: Option<&Path>) -> String {
    let mut message = format!("{TITLE}\n\n");
    let trails: Vec<&Finding> = fixed(report).collect();
    let _ = writeln!(
        message,
        "ctfix fixed {} trail{} ({CONTROL_IDS}):",
        trails.len(),
        if trails.len() == 1 { "" } else { "s" }
    );
    let _ = writeln!(message);
    for finding in trails {
        let _ = writeln!(
            message,
            "- {} in {}: {}",
            finding.resource,
            shown_path(&finding.path, root),
            finding.fix.as_ref().map_or("", |fix| fix.title.as_str()),
        );
    }
    message.replace('`', "")
}

/// The pull-request body in Markdown: what changed, what is left, why, what to check before
/// merging, and the audit evidence. `committed` adds the branch and commit.
pub fn body(report: &Report, committed: Option<&Committed>) -> String {
    let root = committed.map(|c| c.repository.as_path());
    let mut body = String::new();
    let trails: Vec<&Finding> = fixed(report).collect();
    let remaining: Vec<&Finding> = left(report).collect();
    let _ = writeln!(
        body,
        "{BODY_START}{} CloudTrail trail{} and fixed {} whose logs were not encrypted with a customer-managed KMS key ({CONTROL_IDS}).",
        report.findings.len(),
        if report.findings.len() == 1 { "" } else { "s" },
        trails.len(),
    );
    if let Some(committed) = committed {
        let _ = writeln!(
            body,
            "\nBranch `{}`, commit {} ({} file{}).",
            committed.branch,
            &committed.commit[..committed.commit.len().min(12)],
            committed.files,
            if committed.files == 1 { "" } else { "s" }
        );
    }

    if !trails.is_empty() {
        let _ = writeln!(body, "\n## Trails fixed\n");
        let _ = writeln!(body, "| Trail | File | Was | Fix | Safety |");
        let _ = writeln!(body, "| --- | --- | --- | --- | --- |");
        for finding in &trails {
            let fix = finding.fix.as_ref().expect("fixed findings have a fix");
            let _ = writeln!(
                body,
                "| `{}` | `{}:{}` | {} | {} | {} |",
                finding.resource,
                shown_path(&finding.path, root),
                finding.line,
                cell(&finding.message),
                cell(&fix.title),
                fix.applicability.as_str(),
            );
        }
        write_notes(&mut body, "Notes on these fixes:", &trails);
    }

    if !remaining.is_empty() {
        let _ = writeln!(body, "\n## Trails left for a person\n");
        let _ = writeln!(body, "| Trail | File | Status | Why | What to do |");
        let _ = writeln!(body, "| --- | --- | --- | --- | --- |");
        for finding in &remaining {
            let todo = match &finding.fix {
                Some(fix) if fix.applicability == Applicability::Unsafe => format!(
                    "{} (unsafe fix: rerun with `--unsafe-fixes` after review)",
                    fix.title
                ),
                Some(fix) => format!("by hand: {}", fix.title),
                None => "review by hand".to_owned(),
            };
            let _ = writeln!(
                body,
                "| `{}` | `{}:{}` | {} | {} | {} |",
                finding.resource,
                shown_path(&finding.path, root),
                finding.line,
                finding.status.as_str(),
                cell(&finding.message),
                cell(&todo),
            );
        }
        write_notes(&mut body, "Notes on what to do:", &remaining);
    }

    if !report.errors.is_empty() {
        let _ = writeln!(body, "\n## Errors\n");
        let _ = writeln!(
            body,
            "ctfix could not process these; the files named are untouched and may hold trails it did not check:\n"
        );
        for error in &report.errors {
            let mut place = shown_path(&error.path, root);
            if let (Some(line), Some(column)) = (error.line, error.column) {
                place.push_str(&format!(":{line}:{column}"));
            }
            let first_line = error.message.lines().next().unwrap_or_default();
            let _ = writeln!(body, "- `{place}`: {first_line}");
        }
    }

    let _ = writeln!(body, "\n## Why\n");
    let _ = writeln!(
        body,
        "CloudTrail records every API call in the account. With the default SSE-S3 encryption, anyone who can read the bucket can read the logs; a customer-managed key adds an independent permission (`kms:Decrypt` on that key), lets you rotate the key or revoke access at once by disabling it, and makes every decryption of the logs an event in CloudTrail itself. Frameworks: SOC 2, PCI DSS v4.0 10.3.1 and 3.5, HIPAA Security Rule, GDPR Art. 32, NIST SP 800-53 SC-28 and AU-9, FedRAMP Moderate SC-28."
    );

    if trails.iter().any(|f| {
        f.fix
            .as_ref()
            .is_some_and(|fix| fix.title.starts_with("generate "))
    }) {
        let _ = writeln!(body, "\n## The new keys\n");
        let _ = writeln!(
            body,
            "Each generated `aws_kms_key` has rotation on, a 30-day deletion window, and a policy that lets the account administer the key, lets `cloudtrail.amazonaws.com` call `kms:GenerateDataKey*` only for this trail (`aws:SourceArn`, encryption context of this account's trails) and `kms:DescribeKey`. It lets nobody decrypt by itself: the account statement delegates to IAM, so reading the logs takes an IAM policy that grants `kms:Decrypt` on the key. The trail's ARN is built from its name, so there is no dependency cycle."
        );
    }

    let _ = writeln!(body, "\n## Before merging\n");
    for line in [
        "`terraform plan` shows each fixed trail updated in place (`kms_key_id`) and, where a key is generated, one `aws_kms_key` to create per fixed trail, or per instance for a trail with `count` / `for_each` (and the `aws_caller_identity` / `aws_partition` data sources to read) — nothing destroyed.",
        "Only log files delivered after the apply are encrypted with the key; earlier files keep their encryption.",
        "Whoever reads these logs (SIEM, Athena, auditors) needs `kms:Decrypt` on the key, granted through IAM: the generated key policy grants no reader by itself. Readers in another account (a log-archive account) also need a statement in the key policy.",
        "KMS keys are regional: the key is created in the trail's home region; a central bucket in another region or account needs matching key and bucket policies.",
        "Never schedule the key for deletion while its logs are kept: once the waiting period ends they cannot be read again.",
    ] {
        let _ = writeln!(body, "- [ ] {line}");
    }

    let _ = writeln!(body, "\n## Audit evidence\n");
    let _ = writeln!(
        body,
        "After the apply, `aws cloudtrail describe-trails` shows `KmsKeyId` set to the key's ARN on every trail; `aws kms describe-key` shows the key `Enabled`; the key policy shows the `cloudtrail.amazonaws.com` grants; CloudTrail event history shows `GenerateDataKey` calls against the key as logs are delivered; AWS Config's `cloud-trail-encryption-enabled` rule gives continuous evidence."
    );
    let _ = writeln!(
        body,
        "\n<sub>Written by ctfix {}. `ctfix --explain` prints the whole control.</sub>",
        env!("CARGO_PKG_VERSION")
    );
    body
}

/// The fixes' notes of `findings` as a list under `heading`, when any has one.
fn write_notes(body: &mut String, heading: &str, findings: &[&Finding]) {
    let notes: Vec<(&Finding, &str)> = findings
        .iter()
        .filter_map(|f| Some((*f, f.fix.as_ref()?.note.as_deref()?)))
        .collect();
    if notes.is_empty() {
        return;
    }
    let _ = writeln!(body, "\n{heading}\n");
    for (finding, note) in notes {
        let _ = writeln!(body, "- `{}`: {}", finding.resource, note.trim());
    }
}

/// A path as the pull request shows it: relative to the repository when it is inside it.
fn shown_path(path: &Path, root: Option<&Path>) -> String {
    if let Some(root) = root {
        if let Ok(absolute) = std::fs::canonicalize(path) {
            if let Ok(inside) = absolute.strip_prefix(root) {
                return crate::render::display_path(inside);
            }
        }
    }
    crate::render::display_path(path)
}

/// Text safe inside a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FixSummary, RULE_ID};

    fn finding(resource: &str, applied: bool, applicability: Applicability) -> Finding {
        Finding {
            rule: RULE_ID,
            path: "live/main.tf".into(),
            line: 3,
            column: 1,
            resource: resource.to_owned(),
            status: Status::Noncompliant,
            reason: "missing",
            message: "kms_key_id is missing | so logs use SSE-S3".to_owned(),
            meta_argument: None,
            fix: Some(FixSummary {
                title: "generate aws_kms_key.x_cloudtrail and set kms_key_id".to_owned(),
                applicability,
                selected: applied,
                applied,
                note: None,
                diff: None,
                files: Vec::new(),
            }),
            suppression: None,
            via: Vec::new(),
        }
    }

    /// One trail this run fixed, and one whose unsafe fix it left.
    fn fixed_and_left() -> Report {
        Report {
            findings: vec![
                finding("aws_cloudtrail.fixed", true, Applicability::Safe),
                finding("aws_cloudtrail.left", false, Applicability::Unsafe),
            ],
            ..Report::default()
        }
    }

    #[test]
    fn body_lists_fixed_and_left_trails() {
        let report = fixed_and_left();
        let body = body(&report, None);
        let fixed_at = body.find("## Trails fixed").unwrap();
        let left_at = body.find("## Trails left for a person").unwrap();
        assert!(body[fixed_at..left_at].contains("`aws_cloudtrail.fixed`"));
        assert!(body[left_at..].contains("`aws_cloudtrail.left`"));
        assert!(body[left_at..].contains("--unsafe-fixes"));
        assert!(
            body.contains("missing \\| so logs"),
            "pipes escaped: {body}"
        );
        assert!(body.contains("## The new keys"));
        // The key policy grants no reader; readers need kms:Decrypt through IAM.
        assert!(body.contains("grants no reader by itself"), "{body}");
        assert!(!body.contains("principals of this account"), "{body}");
        assert!(!body.contains("## Errors"));
        let mut broken = report.clone();
        broken.errors.push(crate::model::FileError::at(
            "live/x.tf",
            3,
            7,
            "cannot parse HCL: oops\n --> detail",
        ));
        let body = super::body(&broken, None);
        assert!(body.contains("## Errors"));
        assert!(body.contains("- `live/x.tf:3:7`: cannot parse HCL: oops\n"));
        // A note on a fix left for a person reaches the body too.
        let mut noted = report.clone();
        if let Some(fix) = noted.findings[1].fix.as_mut() {
            fix.note = Some("the alias may name a shared key".to_owned());
        }
        let with_note = super::body(&noted, None);
        let left_at = with_note.find("## Trails left for a person").unwrap();
        assert!(with_note[left_at..]
            .contains("- `aws_cloudtrail.left`: the alias may name a shared key\n"));
        for id in ["CKV_AWS_35", "AWS-0015", "CloudTrail.2"] {
            assert!(body.contains(id), "{id}");
        }
    }

    #[test]
    fn commit_message_names_each_fixed_trail() {
        let report = fixed_and_left();
        let message = commit_message(&report, None);
        assert!(message.starts_with(&format!("{TITLE}\n\n")));
        assert!(message.contains("- aws_cloudtrail.fixed in live/main.tf:"));
        assert!(!message.contains("aws_cloudtrail.left"));
        assert!(!message.contains('`'));
    }
}
