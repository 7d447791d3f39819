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
    let lines = scan_comments(text);

    // The comment lines directly above the block, then the block's own lines.
    let mut first = block_start_line;
    while first > 0 && lines.get(first - 1).is_some_and(|l| l.only_comments) {
        first -= 1;
    }
    for (index, line) in lines
        .iter()
        .enumerate()
        .take(block_end_line + 1)
        .skip(first)
    {
        for comment in &line.comments {
            if let Some(found) = match_comment(comment, index + 1, today, index <= block_start_line)
            {
                return Some(found);
            }
        }
    }
    // KICS's file-wide `disable=`.
    for (index, line) in lines.iter().enumerate() {
        for comment in &line.comments {
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

/// The comments of one line.
#[derive(Debug, Default)]
struct LineComments<'t> {
    /// The text of each comment on the line (after `#` / `//`, or the line's part of a
    /// `/* */` comment).
    comments: Vec<&'t str>,
    /// Whether the line holds comments and nothing else.
    only_comments: bool,
}

/// Where the scanner is.
#[derive(Debug)]
enum Context<'t> {
    /// Code, with the depth of `{` opened in it (a template's `${` ends at depth 0).
    Code(usize),
    /// A quoted string.
    Quoted,
    /// A heredoc's body, ending at a line holding only the delimiter.
    Heredoc(&'t str),
    /// A `/* */` comment.
    BlockComment,
}

/// Finds the comments of a file, line by line: `#`, `//` and `/* */` outside quoted strings,
/// heredocs and templates, which are string data however much they look like comments.
fn scan_comments(text: &str) -> Vec<LineComments<'_>> {
    let bytes = text.as_bytes();
    let mut lines: Vec<LineComments> = Vec::new();
    let mut stack: Vec<Context> = vec![Context::Code(0)];
    let mut line_start = 0;
    while line_start <= text.len() {
        let line_end = text[line_start..]
            .find('\n')
            .map_or(text.len(), |at| line_start + at);
        let line = &text[line_start..line_end];
        let mut current = LineComments::default();
        let mut code_seen = false;
        if let Some(Context::Heredoc(delimiter)) = stack.last() {
            if line.trim() == *delimiter {
                stack.pop();
            }
            lines.push(current);
            line_start = line_end + 1;
            continue;
        }
        let mut i = line_start;
        if matches!(stack.last(), Some(Context::BlockComment)) {
            let end = line.find("*/").map_or(line_end, |at| line_start + at);
            current.comments.push(&text[line_start..end]);
            if end < line_end {
                stack.pop();
                i = end + 2;
            } else {
                i = line_end;
            }
        }
        while i < line_end {
            let byte = bytes[i];
            let next = bytes.get(i + 1).copied();
            match stack.last_mut() {
                Some(Context::Quoted) => match byte {
                    b'\\' => i += 1,
                    b'"' => {
                        stack.pop();
                    }
                    b'$' | b'%' if next == Some(b'{') => {
                        if i > line_start && bytes[i - 1] == byte {
                            // `$${` / `%%{`: an escaped, literal `${`.
                        } else {
                            stack.push(Context::Code(0));
                            i += 1;
                        }
                    }
                    _ => {}
                },
                Some(Context::Code(depth)) => {
                    if !byte.is_ascii_whitespace() && !matches!(byte, b'#' | b'/') {
                        code_seen = true;
                    }
                    match byte {
                        b'"' => stack.push(Context::Quoted),
                        b'{' => *depth += 1,
                        b'}' if *depth > 0 => *depth -= 1,
                        b'}' if stack.len() > 1 => {
                            stack.pop();
                        }
                        b'#' => {
                            current.comments.push(&text[i + 1..line_end]);
                            break;
                        }
                        b'/' if next == Some(b'/') => {
                            current.comments.push(&text[i + 2..line_end]);
                            break;
                        }
                        b'/' if next == Some(b'*') => {
                            let rest = &text[i + 2..line_end];
                            match rest.find("*/") {
                                Some(end) => {
                                    current.comments.push(&rest[..end]);
                                    i += 2 + end + 1;
                                }
                                None => {
                                    current.comments.push(rest);
                                    stack.push(Context::BlockComment);
                                    break;
                                }
                            }
                        }
                        b'/' => code_seen = true,
                        b'<' if next == Some(b'<') => {
                            if let Some(delimiter) = heredoc_delimiter(&text[i + 2..line_end]) {
                                stack.push(Context::Heredoc(delimiter));
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                // Heredocs and block comments are handled per line above.
                _ => break,
            }
            i += 1;
        }
        if matches!(stack.last(), Some(Context::Quoted)) {
            // A quoted string does not span lines: recover at the line's end.
            stack.pop();
        }
        current.only_comments = !current.comments.is_empty() && !code_seen;
        lines.push(current);
        line_start = line_end + 1;
    }
    lines
}

/// The delimiter of a heredoc opened by `<<` followed by `rest` (the line after `<<`):
/// `EOT` for `<<EOT` or `<<-EOT`, the rest of the line being blank.
fn heredoc_delimiter(rest: &str) -> Option<&str> {
    let rest = rest.strip_prefix('-').unwrap_or(rest);
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(rest.len());
    let (delimiter, tail) = rest.split_at(end);
    let starts_ok = delimiter
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    (starts_ok && tail.trim().is_empty()).then_some(delimiter)
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

    /// Regression: a heredoc line looking like a comment suppressed the trail.
    #[test]
    fn heredoc_content_is_no_comment() {
        assert!(find("resource \"aws_cloudtrail\" \"t\" {\n  tags = { note = <<EOT\n# ctfix:ignore\nEOT\n  }\n}\n").is_none());
        assert!(find("resource \"aws_cloudtrail\" \"t\" {\n  tags = { note = <<-EOT\n    // ctfix:ignore\n    /* trivy:ignore:AVD-AWS-0015 */\n    EOT\n  }\n}\n").is_none());
        let elsewhere = format!(
            "resource \"aws_ssm_document\" \"d\" {{\n  content = <<DOC\n# kics-scan disable={KICS_ID}\nDOC\n}}\n\nresource \"aws_cloudtrail\" \"t\" {{\n}}\n"
        );
        assert!(find(&elsewhere).is_none());
        // After the heredoc ends, comments count again.
        let after = "resource \"aws_cloudtrail\" \"t\" {\n  tags = { note = <<EOT\nx\nEOT\n  }\n  # ctfix:ignore: after\n}\n";
        assert_eq!(find(after).unwrap().line, 6);
    }

    #[test]
    fn templates_and_block_comments() {
        // A `#` inside a template's string is string data; a `}` of the template ends it.
        assert!(find("resource \"aws_cloudtrail\" \"t\" {\n  name = \"${join(\"#\", [\"ctfix:ignore\"])}\"\n}\n").is_none());
        assert!(find(
            "resource \"aws_cloudtrail\" \"t\" {\n  name = \"${var.x}\" # ctfix:ignore\n}\n"
        )
        .is_some());
        assert!(find(
            "resource \"aws_cloudtrail\" \"t\" {\n  name = \"$${x} # ctfix:ignore\"\n}\n"
        )
        .is_none());
        // A block comment over several lines directly above the block.
        let above = "/*\n  ctfix:ignore: legacy\n*/\nresource \"aws_cloudtrail\" \"t\" {\n}\n";
        assert_eq!(find(above).unwrap().reason.as_deref(), Some("legacy"));
        // A line of code between the comment and the block breaks "directly above".
        assert!(
            find("# ctfix:ignore\nlocals {}\nresource \"aws_cloudtrail\" \"t\" {\n}\n").is_none()
        );
    }

    #[test]
    fn today_is_a_date() {
        let t = today();
        assert_eq!(t.len(), 10);
        assert!(t.as_str() > "2024-01-01");
    }
}
