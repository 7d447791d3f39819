//! Suppression comments: each scanner honours only its own; ctfix honours all of them (and
//! its own), reports the trail as `suppressed`, and never changes it.
//!
//! Recognised, case-insensitively, in a comment inside the trail's block or in the comment
//! lines directly above it:
//! - `checkov:skip=CKV_AWS_35[:reason]`
//! - `trivy:ignore:AVD-AWS-0015` / `AWS-0015` / `aws-cloudtrail-enable-at-rest-encryption`
//!   (an `:exp:YYYY-MM-DD` suffix in the past makes it lapse, as in Trivy)
//! - `tfsec:ignore:aws-cloudtrail-enable-at-rest-encryption` (same expiry rule)
//! - `kics-scan ignore-block`, and `kics-scan disable=5d9e3164-9265-470c-9a10-57ae454ac0c7`
//!   anywhere in the file's comments
//! - `ctfix:ignore[:reason]`

use std::ops::Range;

use serde::Serialize;

/// The KICS query id of this control.
const KICS_ID: &str = "5d9e3164-9265-470c-9a10-57ae454ac0c7";

/// A suppression that applies to a trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suppression {
    /// `checkov`, `trivy`, `tfsec`, `kics` or `ctfix`.
    pub tool: &'static str,
    /// The comment as written (trimmed).
    pub comment: String,
    /// The reason given in the comment, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// 1-based line of the comment.
    pub line: usize,
}

/// The suppression covering the block at `block` (a byte range of `text`), if any.
/// `today` is `YYYY-MM-DD`, for expiring Trivy/tfsec ignores.
pub fn find_suppression(text: &str, block: Range<usize>, today: &str) -> Option<Suppression> {
    let block_start_line = text[..block.start].matches('\n').count();
    let block_end_line = text[..block.end.min(text.len())].matches('\n').count();
    let lines: Vec<&str> = text.split('\n').collect();

    // The comment lines directly above the block, then the block's own lines.
    let mut first = block_start_line;
    while first > 0 && is_comment_line(lines[first - 1]) {
        first -= 1;
    }
    for (index, line) in lines
        .iter()
        .enumerate()
        .take(block_end_line + 1)
        .skip(first)
    {
        for comment in comments_in_line(line) {
            if let Some(found) = match_comment(comment, index + 1, today, index <= block_start_line)
            {
                return Some(found);
            }
        }
    }
    // KICS's file-wide `disable=`.
    for (index, line) in lines.iter().enumerate() {
        for comment in comments_in_line(line) {
            let lower = comment.to_ascii_lowercase();
            if let Some(rest) = lower.split("kics-scan disable=").nth(1) {
                if rest.split([',', ' ']).any(|id| id.trim() == KICS_ID) {
                    return Some(Suppression {
                        tool: "kics",
                        comment: comment.trim().to_owned(),
                        reason: None,
                        line: index + 1,
                    });
                }
            }
        }
    }
    None
}

fn is_comment_line(line: &str) -> bool {
    let trimmed = line.trim_start();
    trimmed.starts_with('#')
        || trimmed.starts_with("//")
        || trimmed.starts_with("/*")
        || trimmed.starts_with('*')
}

/// The comments on one line (text after `#` or `//`, or inside `/* */`), skipping strings.
fn comments_in_line(line: &str) -> Vec<&str> {
    let bytes = line.as_bytes();
    let mut out = Vec::new();
    let mut in_string = false;
    let mut i = 0;
    let trimmed = line.trim_start();
    if trimmed.starts_with('*') {
        // Inside a multi-line block comment.
        out.push(trimmed);
        return out;
    }
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_string => i += 1,
            b'"' => in_string = !in_string,
            b'#' if !in_string => {
                out.push(&line[i + 1..]);
                break;
            }
            b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => {
                out.push(&line[i + 2..]);
                break;
            }
            b'/' if !in_string && bytes.get(i + 1) == Some(&b'*') => {
                let rest = &line[i + 2..];
                let end = rest.find("*/").unwrap_or(rest.len());
                out.push(&rest[..end]);
                i += 2 + end + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

fn match_comment(
    comment: &str,
    line: usize,
    today: &str,
    above_or_on_block_line: bool,
) -> Option<Suppression> {
    let lower = comment.to_ascii_lowercase();
    let make = |tool, reason: Option<String>| Suppression {
        tool,
        comment: comment.trim().to_owned(),
        reason: reason.filter(|r| !r.is_empty()),
        line,
    };
    if let Some(at) = lower.find("checkov:skip=") {
        let rest = &comment[at + "checkov:skip=".len()..];
        let (id, reason) = split_once_trim(rest, ':');
        if id.eq_ignore_ascii_case("CKV_AWS_35") {
            return Some(make("checkov", reason));
        }
    }
    for (tool, prefix) in [("trivy", "trivy:ignore:"), ("tfsec", "tfsec:ignore:")] {
        if let Some(at) = lower.find(prefix) {
            let rest = &lower[at + prefix.len()..];
            let id = rest
                .split(|c: char| c == ':' || c.is_whitespace())
                .next()
                .unwrap_or("");
            let matches = matches!(
                id,
                "avd-aws-0015" | "aws-0015" | "aws-cloudtrail-enable-at-rest-encryption"
            );
            let expired = rest
                .split(":exp:")
                .nth(1)
                .map(|date| date.get(..10).unwrap_or(date))
                .is_some_and(|date| date < today);
            if matches && !expired {
                return Some(make(tool, None));
            }
        }
    }
    if above_or_on_block_line && lower.contains("kics-scan ignore-block") {
        return Some(make("kics", None));
    }
    if let Some(at) = lower.find("ctfix:ignore") {
        let rest = comment[at + "ctfix:ignore".len()..].trim_start_matches([':', ' ']);
        return Some(make("ctfix", Some(rest.trim().to_owned())));
    }
    None
}

fn split_once_trim(text: &str, sep: char) -> (&str, Option<String>) {
    match text.split_once(sep) {
        Some((id, reason)) => (id.trim(), Some(reason.trim().to_owned())),
        None => (text.split_whitespace().next().unwrap_or(""), None),
    }
}

/// Today's date as `YYYY-MM-DD` (UTC), for expiring ignores.
pub fn today() -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(text: &str) -> Option<Suppression> {
        let start = text.find("resource").unwrap();
        let end = text.rfind('}').unwrap() + 1;
        find_suppression(text, start..end, "2026-11-28")
    }

    #[test]
    fn checkov_inside_the_block_with_reason() {
        let s = find("resource \"aws_cloudtrail\" \"t\" {\n  #checkov:skip=CKV_AWS_35:Encrypted by the org trail\n  name = \"t\"\n}\n").unwrap();
        assert_eq!(
            (s.tool, s.reason.as_deref(), s.line),
            ("checkov", Some("Encrypted by the org trail"), 2)
        );
    }

    #[test]
    fn other_checkov_ids_do_not_count() {
        assert!(
            find("resource \"aws_cloudtrail\" \"t\" {\n  #checkov:skip=CKV_AWS_36:x\n}\n")
                .is_none()
        );
    }

    #[test]
    fn trivy_above_the_block_and_expiry() {
        assert_eq!(
            find("#trivy:ignore:AVD-AWS-0015\nresource \"aws_cloudtrail\" \"t\" {\n}\n")
                .unwrap()
                .tool,
            "trivy"
        );
        assert_eq!(find("# tfsec:ignore:aws-cloudtrail-enable-at-rest-encryption\nresource \"aws_cloudtrail\" \"t\" {\n}\n").unwrap().tool, "tfsec");
        assert!(find(
            "#trivy:ignore:AVD-AWS-0015:exp:2024-01-01\nresource \"aws_cloudtrail\" \"t\" {\n}\n"
        )
        .is_none());
        assert!(find(
            "#trivy:ignore:AVD-AWS-0015:exp:2027-01-01\nresource \"aws_cloudtrail\" \"t\" {\n}\n"
        )
        .is_some());
    }

    #[test]
    fn comment_separated_by_a_blank_line_does_not_count() {
        assert!(
            find("#trivy:ignore:AVD-AWS-0015\n\nresource \"aws_cloudtrail\" \"t\" {\n}\n")
                .is_none()
        );
    }

    #[test]
    fn kics_block_and_file() {
        assert_eq!(
            find("# kics-scan ignore-block\nresource \"aws_cloudtrail\" \"t\" {\n}\n")
                .unwrap()
                .tool,
            "kics"
        );
        let file =
            format!("# kics-scan disable={KICS_ID}\n\nresource \"aws_cloudtrail\" \"t\" {{\n}}\n");
        assert_eq!(find(&file).unwrap().tool, "kics");
    }

    #[test]
    fn ctfix_and_strings_that_look_like_comments() {
        assert_eq!(
            find("resource \"aws_cloudtrail\" \"t\" { // ctfix:ignore: managed elsewhere\n}\n")
                .unwrap()
                .reason
                .as_deref(),
            Some("managed elsewhere")
        );
        assert!(find(
            "resource \"aws_cloudtrail\" \"t\" {\n  name = \"#checkov:skip=CKV_AWS_35\"\n}\n"
        )
        .is_none());
    }

    #[test]
    fn today_is_a_date() {
        let t = today();
        assert_eq!(t.len(), 10);
        assert!(t.as_str() > "2024-01-01");
    }
}
