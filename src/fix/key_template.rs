//! The `aws_kms_key` ctfix generates, rendered from `templates/cloudtrail_kms_key.tf`.
//! Where the policy's statements come from is explained in that file.

/// The template as shipped; everything after the `--- template ---` line is the block.
const KEY_TEMPLATE: &str = include_str!("../../templates/cloudtrail_kms_key.tf");

/// The policy-document statements ctfix adds to an `aws_iam_policy_document`.
const DOCUMENT_TEMPLATE: &str = include_str!("../../templates/cloudtrail_policy_statements.tf");

/// Sids of the statements that let CloudTrail use a key.
pub const CLOUDTRAIL_SIDS: [&str; 2] = [
    "AllowCloudTrailToEncryptLogs",
    "AllowCloudTrailToDescribeKey",
];

/// The Sids of the statements that grant CloudTrail the `missing` actions
/// (`kms:GenerateDataKey*`, `kms:DescribeKey`), in template order; both when none is named.
pub fn cloudtrail_sids_for(missing: &[&str]) -> Vec<&'static str> {
    let sids: Vec<&'static str> = CLOUDTRAIL_SIDS
        .into_iter()
        .filter(|sid| {
            missing.iter().any(|action| match *action {
                "kms:GenerateDataKey*" => *sid == CLOUDTRAIL_SIDS[0],
                "kms:DescribeKey" => *sid == CLOUDTRAIL_SIDS[1],
                _ => false,
            })
        })
        .collect();
    if sids.is_empty() {
        CLOUDTRAIL_SIDS.to_vec()
    } else {
        sids
    }
}

/// Sid of the statement that lets the account administer a key.
pub const ADMIN_SID: &str = "EnableAccountAdministration";

/// How the trail's `name` can be written inside a string in the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrailName {
    /// The inside of a quoted string or template (`"org-trail"` → `org-trail`).
    Quoted(String),
    /// A single-line expression, interpolated as `${…}`.
    Expression(String),
    /// Not expressible (missing or multi-line): the policy allows any trail of the account.
    Unknown,
}

/// What a generated key needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyParams<'a> {
    /// The new key's label.
    pub key_label: &'a str,
    /// The trail's resource address, used when its name cannot be written.
    pub trail_address: &'a str,
    /// The trail's name.
    pub trail_name: &'a TrailName,
    /// Meta-arguments copied from the trail (`provider`, `count`, `for_each`) as
    /// `(name, expression text)`, in that order.
    pub meta_arguments: &'a [(&'static str, String)],
    /// Label of the `aws_partition` data source to read.
    pub partition_label: &'a str,
    /// Label of the `aws_caller_identity` data source to read.
    pub identity_label: &'a str,
}

/// How an organisation wants its keys: the generated key's extras (`[generated-key]` of
/// `.ctfix.toml`), or an existing key to wire instead (`use-key`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyOptions {
    /// Tags on every generated key, in key order.
    pub tags: std::collections::BTreeMap<String, String>,
    /// An alias name for every generated key, `{trail}` standing for the trail's name
    /// (adds an `aws_kms_alias`).
    pub alias: Option<String>,
    /// `deletion_window_in_days` (7–30); the template's 30 when `None`.
    pub deletion_window_days: Option<u8>,
    /// Whether generated keys are multi-Region keys.
    pub multi_region: bool,
    /// An existing key to wire instead of generating one.
    pub use_key: Option<UseKey>,
}

/// An existing key to point trails at (an organisation's central CloudTrail key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UseKey {
    /// A key ARN, written as a quoted string.
    Arn(String),
    /// A reference such as `var.cloudtrail_key_arn` or `data.aws_kms_key.central.arn`.
    Expression(String),
}

impl UseKey {
    /// The value `kms_key_id` gets.
    pub fn value(&self) -> String {
        match self {
            UseKey::Arn(arn) => format!("\"{arn}\""),
            UseKey::Expression(text) => text.clone(),
        }
    }
}

/// The key block with the configured extras: deletion window, multi-Region, tags. The
/// inserted lines follow `terraform fmt`'s alignment of the template's attribute group.
pub fn apply_key_options(key: &str, options: &KeyOptions) -> String {
    let mut out = String::with_capacity(key.len() + 128);
    for line in key.split('\n') {
        if let (Some(days), true) = (
            options.deletion_window_days,
            line.starts_with("  deletion_window_in_days = "),
        ) {
            out.push_str(&format!("  deletion_window_in_days = {days}\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if options.multi_region && line.starts_with("  enable_key_rotation     = ") {
            out.push_str("  multi_region            = true\n");
        }
        if line == "  })" && !options.tags.is_empty() {
            out.push_str(&render_tags(&options.tags));
        }
    }
    out.truncate(out.trim_end_matches('\n').len());
    out
}

/// `  tags = { … }` with one line per tag, `=` aligned as `terraform fmt` aligns them.
fn render_tags(tags: &std::collections::BTreeMap<String, String>) -> String {
    let keys: Vec<String> = tags
        .keys()
        .map(|key| {
            if crate::module::is_identifier(key) {
                key.clone()
            } else {
                format!("\"{}\"", escape_string(key))
            }
        })
        .collect();
    let width = keys.iter().map(|k| k.chars().count()).max().unwrap_or(0);
    let mut out = String::from("  tags = {\n");
    for (key, value) in keys.iter().zip(tags.values()) {
        let pad = " ".repeat(width - key.chars().count());
        out.push_str(&format!("    {key}{pad} = \"{}\"\n", escape_string(value)));
    }
    out.push_str("  }\n");
    out
}

/// What an alias needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasParams<'a> {
    /// The alias resource's label.
    pub label: &'a str,
    /// The configured name, `{trail}` standing for the trail's name.
    pub pattern: &'a str,
    /// The trail's name.
    pub trail_name: &'a TrailName,
    /// The trail's label, for a name that cannot be written.
    pub trail_label: &'a str,
    /// The key's label.
    pub key_label: &'a str,
    /// The key's meta-arguments, copied so there is one alias per key instance.
    pub meta_arguments: &'a [(&'static str, String)],
}

/// `resource "aws_kms_alias" …` naming the generated key.
pub fn render_alias(params: &AliasParams<'_>) -> String {
    let name = match params.trail_name {
        // Alias names allow letters, digits, `/`, `_` and `-`; trail names also allow `.`.
        TrailName::Quoted(inner) => sanitize_alias_part(inner),
        TrailName::Expression(text) => format!("${{{}}}", plan_time_sanitized(text)),
        TrailName::Unknown => sanitize_alias_part(params.trail_label),
    };
    let counted = params.meta_arguments.iter().any(|(n, _)| *n == "count");
    let each = params.meta_arguments.iter().any(|(n, _)| *n == "for_each");
    let index = if counted {
        "[count.index]"
    } else if each {
        "[each.key]"
    } else {
        ""
    };
    // One alias per key instance, and alias names are unique: a name that is the same for
    // every instance (the label, for want of the trail's name) takes the instance's key.
    let name = match params.trail_name {
        TrailName::Unknown if counted => format!("{name}-${{count.index}}"),
        TrailName::Unknown if each => format!("{name}-${{{}}}", plan_time_sanitized("each.key")),
        _ => name,
    };
    format!(
        "resource \"aws_kms_alias\" \"{}\" {{\n{}  name          = \"{}\"\n  target_key_id = aws_kms_key.{}{index}.key_id\n}}",
        params.label,
        render_meta_arguments(params.meta_arguments),
        params.pattern.replace("{trail}", &name),
        params.key_label,
    )
}

/// An expression for an alias name's part whose value is known only at plan time: its
/// characters alias names do not allow (a trail name may hold `.`) become `-` then too. A
/// `count.index` is a number, which needs nothing.
fn plan_time_sanitized(expression: &str) -> String {
    if expression.trim() == "count.index" {
        return expression.to_owned();
    }
    format!("replace({expression}, \"/[^0-9A-Za-z_/-]/\", \"-\")")
}

/// Replaces the characters an alias name does not allow with `-`: in the text now, in its
/// `${…}` interpolations at plan time (`%{…}` directives are kept as they are).
fn sanitize_alias_part(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if matches!(c, '$' | '%') && chars.peek() == Some(&'{') {
            let mut inner = String::new();
            let mut depth = 0;
            for next in chars.by_ref() {
                inner.push(next);
                match next {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
            }
            out.push(c);
            // `inner` is `{…}`, or the rest of an unclosed one.
            match inner
                .strip_prefix('{')
                .and_then(|rest| rest.strip_suffix('}'))
                .filter(|expression| {
                    c == '$' && !expression.starts_with('~') && !expression.ends_with('~')
                }) {
                Some(expression) => {
                    out.push('{');
                    out.push_str(&plan_time_sanitized(expression));
                    out.push('}');
                }
                None => out.push_str(&inner),
            }
        } else if c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-') {
            out.push(c);
        } else {
            out.push('-');
        }
    }
    out
}

/// The template's block, without the explanatory header.
pub fn template_block() -> &'static str {
    after_marker(KEY_TEMPLATE)
}

fn after_marker(template: &'static str) -> &'static str {
    let marker = "# --- template ---\n";
    let start = template
        .find(marker)
        .map_or(0, |index| index + marker.len());
    &template[start..]
}

/// The key template's policy statements with these Sids, as `jsonencode` objects (`{ … }`,
/// no trailing comma, no indentation of their own), for a key shared by any trail of the
/// account (`trail/*`).
pub fn jsonencode_statements(
    sids: &[&str],
    partition_label: &str,
    identity_label: &str,
) -> Vec<String> {
    let key = render_key(&KeyParams {
        key_label: "KEY",
        trail_address: "",
        trail_name: &TrailName::Unknown,
        meta_arguments: &[],
        partition_label,
        identity_label,
    });
    chunks(&key, "      {", "      },", 6)
        .into_iter()
        .filter(|chunk| {
            sids.iter()
                .any(|sid| chunk.contains(&format!("Sid       = \"{sid}\"")))
        })
        .map(|chunk| chunk.trim_end_matches(',').to_owned())
        .collect()
}

/// The policy-document `statement` blocks with these Sids (no indentation of their own).
pub fn document_statements(
    sids: &[&str],
    partition_label: &str,
    identity_label: &str,
) -> Vec<String> {
    let text = after_marker(DOCUMENT_TEMPLATE)
        .replace("PARTITION_LABEL", partition_label)
        .replace("IDENTITY_LABEL", identity_label);
    chunks(&text, "  statement {", "  }", 2)
        .into_iter()
        .filter(|chunk| {
            sids.iter()
                .any(|sid| chunk.contains(&format!("sid       = \"{sid}\"")))
        })
        .collect()
}

/// The runs of lines from a line equal to `open` to the next line equal to `close`, with
/// `indent` leading spaces removed.
fn chunks(text: &str, open: &str, close: &str, indent: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in text.lines() {
        if current.is_none() && line == open {
            current = Some(Vec::new());
        }
        if let Some(lines) = &mut current {
            lines.push(line.get(indent..).unwrap_or(""));
            if line == close {
                out.push(lines.join("\n"));
                current = None;
            }
        }
    }
    out
}

/// Renders the key block with `\n` line endings and no trailing newline.
pub fn render_key(params: &KeyParams<'_>) -> String {
    let (in_arn, in_description) = match params.trail_name {
        TrailName::Quoted(inner) => (inner.clone(), inner.clone()),
        TrailName::Expression(text) => (format!("${{{text}}}"), format!("${{{text}}}")),
        TrailName::Unknown => ("*".to_owned(), escape_string(params.trail_address)),
    };
    let meta = render_meta_arguments(params.meta_arguments);
    let mut out = String::with_capacity(template_block().len() + 256);
    for line in template_block().lines() {
        if line.trim() == "# META_ARGUMENTS" {
            out.push_str(&meta);
            continue;
        }
        // Labels first: the trail's name is user text and must not be searched for them.
        let line = line
            .replace("KEY_LABEL", params.key_label)
            .replace("PARTITION_LABEL", params.partition_label)
            .replace("IDENTITY_LABEL", params.identity_label);
        let line = if line.trim_start().starts_with("description") {
            line.replace("${TRAIL_NAME}", &in_description)
        } else {
            line.replace("${TRAIL_NAME}", &in_arn)
        };
        out.push_str(&line);
        out.push('\n');
    }
    out.truncate(out.trim_end_matches('\n').len());
    out
}

/// Text as the inside of an HCL quoted string holding exactly it: quotes, backslashes, line
/// breaks and other control characters in HCL's escapes, template sequences doubled.
pub(crate) fn escape_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// `  provider = aws.x` / `  count    = …` lines aligned as `terraform fmt` aligns them, then a
/// blank line; empty when there are none.
fn render_meta_arguments(meta: &[(&'static str, String)]) -> String {
    if meta.is_empty() {
        return String::new();
    }
    let width = meta.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (name, value) in meta {
        out.push_str(&format!("  {name:<width$} = {value}\n"));
    }
    out.push('\n');
    out
}

/// `data "<data_type>" "<label>" {}` on the given provider (`None`: the default provider).
pub fn render_data_source(data_type: &str, label: &str, provider: Option<&str>) -> String {
    match provider {
        None => format!("data \"{data_type}\" \"{label}\" {{}}"),
        Some(provider) => {
            format!("data \"{data_type}\" \"{label}\" {{\n  provider = {provider}\n}}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params<'a>(name: &'a TrailName, meta: &'a [(&'static str, String)]) -> KeyParams<'a> {
        KeyParams {
            key_label: "main_cloudtrail",
            trail_address: "aws_cloudtrail.main",
            trail_name: name,
            meta_arguments: meta,
            partition_label: "current",
            identity_label: "me",
        }
    }

    #[test]
    fn template_parses_as_hcl() {
        hcl_edit::parser::parse_body(template_block()).unwrap();
    }

    #[test]
    fn placeholders_are_all_filled() {
        let name = TrailName::Expression("var.name".into());
        let text = render_key(&params(&name, &[]));
        for placeholder in [
            "KEY_LABEL",
            "PARTITION_LABEL",
            "IDENTITY_LABEL",
            "TRAIL_NAME",
            "META",
        ] {
            assert!(
                !text.contains(placeholder),
                "{placeholder} left in:\n{text}"
            );
        }
        assert!(text.starts_with("resource \"aws_kms_key\" \"main_cloudtrail\" {\n  description"));
        assert!(text.contains(":trail/${var.name}\""));
        assert!(text.contains("data.aws_caller_identity.me.account_id"));
        hcl_edit::parser::parse_body(&text).unwrap();
    }

    #[test]
    fn policy_is_administration_and_cloudtrail_only() {
        let text = render_key(&params(&TrailName::Quoted("org".into()), &[]));
        let sids: Vec<&str> = text
            .lines()
            .filter_map(|line| line.trim().strip_prefix("Sid       = \""))
            .map(|rest| rest.trim_end_matches('"'))
            .collect();
        assert_eq!(sids, [ADMIN_SID, CLOUDTRAIL_SIDS[0], CLOUDTRAIL_SIDS[1]]);
        // No reader is granted by the key policy: readers get kms:Decrypt through IAM.
        for absent in ["kms:Decrypt", "AWS = \"*\"", "kms:CallerAccount"] {
            assert!(!text.contains(absent), "{absent} in:\n{text}");
        }
    }

    #[test]
    fn meta_arguments_are_aligned_and_separated() {
        let name = TrailName::Quoted("org".into());
        let meta = [
            ("provider", "aws.audit".to_owned()),
            ("count", "var.n".to_owned()),
        ];
        let text = render_key(&params(&name, &meta));
        assert!(text.contains("{\n  provider = aws.audit\n  count    = var.n\n\n  description"));
        assert!(text.contains("of trail org\""));
    }

    #[test]
    fn unknown_name_allows_any_trail_of_the_account() {
        let text = render_key(&params(&TrailName::Unknown, &[]));
        assert!(text.contains(":trail/*\""));
        assert!(text.contains("of trail aws_cloudtrail.main\""));
    }

    #[test]
    fn statements_are_extracted_from_the_templates() {
        let statements = jsonencode_statements(&CLOUDTRAIL_SIDS, "p", "me");
        assert_eq!(statements.len(), 2);
        assert!(statements[0].starts_with("{\n  Sid       = \"AllowCloudTrailToEncryptLogs\""));
        assert!(statements[0].ends_with("\n}"));
        assert!(statements[0].contains("data.aws_caller_identity.me.account_id}:trail/*\""));
        let with_admin = jsonencode_statements(
            &[ADMIN_SID, CLOUDTRAIL_SIDS[0], CLOUDTRAIL_SIDS[1]],
            "p",
            "me",
        );
        assert_eq!(with_admin.len(), 3);
        let blocks = document_statements(&CLOUDTRAIL_SIDS, "p", "me");
        assert_eq!(blocks.len(), 2);
        let describe = document_statements(&cloudtrail_sids_for(&["kms:DescribeKey"]), "p", "me");
        assert_eq!(describe.len(), 1);
        assert!(describe[0].contains("\"AllowCloudTrailToDescribeKey\""));
        assert_eq!(
            jsonencode_statements(&cloudtrail_sids_for(&["kms:GenerateDataKey*"]), "p", "me").len(),
            1
        );
        assert!(
            blocks[0].starts_with("statement {\n  sid       = \"AllowCloudTrailToEncryptLogs\"")
        );
        assert!(blocks[1].ends_with("\n}"));
    }

    #[test]
    fn each_alias_instance_has_its_own_name() {
        let alias = |name: &TrailName, meta: &[(&'static str, String)]| {
            render_alias(&AliasParams {
                label: "a",
                pattern: "alias/ct/{trail}",
                trail_name: name,
                trail_label: "trails",
                key_label: "k",
                meta_arguments: meta,
            })
        };
        let each = [("for_each", "var.regions".to_owned())];
        assert!(alias(&TrailName::Unknown, &each).contains(
            "name          = \"alias/ct/trails-${replace(each.key, \"/[^0-9A-Za-z_/-]/\", \"-\")}\""
        ));
        let count = [("count", "2".to_owned())];
        assert!(alias(&TrailName::Unknown, &count)
            .contains("name          = \"alias/ct/trails-${count.index}\""));
        // A name that reads the instance already differs per instance.
        let named = TrailName::Expression("each.key".into());
        assert!(alias(&named, &each).contains("alias/ct/${replace(each.key,"));
        assert!(alias(&TrailName::Unknown, &[]).contains("\"alias/ct/trails\""));
    }

    #[test]
    fn alias_names_keep_interpolations() {
        assert_eq!(
            sanitize_alias_part("org.trail-${count.index} x"),
            "org-trail-${count.index}-x"
        );
        // A value known at plan time may hold `.` too: it is replaced then.
        assert_eq!(
            sanitize_alias_part("${var.a[\"k\"]}"),
            "${replace(var.a[\"k\"], \"/[^0-9A-Za-z_/-]/\", \"-\")}"
        );
        assert_eq!(
            sanitize_alias_part("a-%{if x}b%{endif}"),
            "a-%{if x}b%{endif}"
        );
        // `$` and `%` start a template sequence only before `{`.
        assert_eq!(sanitize_alias_part("50%off$x{y}"), "50-off-x-y-");
    }

    #[test]
    fn key_options_follow_fmt() {
        let key = render_key(&params(&TrailName::Quoted("org".into()), &[]));
        let options = KeyOptions {
            tags: [
                ("Owner".to_owned(), "sec".to_owned()),
                ("cost-center".to_owned(), "1".to_owned()),
            ]
            .into_iter()
            .collect(),
            deletion_window_days: Some(7),
            multi_region: true,
            ..KeyOptions::default()
        };
        let text = apply_key_options(&key, &options);
        assert!(text.contains("  deletion_window_in_days = 7\n  enable_key_rotation     = true\n  multi_region            = true\n"));
        assert!(text.ends_with(
            "  })\n  tags = {\n    Owner       = \"sec\"\n    cost-center = \"1\"\n  }\n}"
        ));
        assert_eq!(apply_key_options(&key, &KeyOptions::default()), key);
    }

    #[test]
    fn addresses_are_escaped_in_strings() {
        assert_eq!(
            escape_string(r#"a "b" \ ${c} %{d}"#),
            r#"a \"b\" \\ $${c} %%{d}"#
        );
    }

    #[test]
    fn data_sources() {
        assert_eq!(
            render_data_source("aws_partition", "current", None),
            "data \"aws_partition\" \"current\" {}"
        );
        assert_eq!(
            render_data_source("aws_caller_identity", "audit", Some("aws.audit")),
            "data \"aws_caller_identity\" \"audit\" {\n  provider = aws.audit\n}"
        );
    }

    #[test]
    fn a_chunk_runs_from_its_opening_line_to_the_next_closing_line() {
        // Lines outside chunks belong to none; an opening line inside a chunk is content, it
        // does not restart the chunk (cargo-mutants: `&&` → `||` in `chunks` was missed).
        let text = "intro\n  {\n    a\n  {\n  },\nbetween\n  {\n    b\n  },\noutro\n";
        assert_eq!(
            chunks(text, "  {", "  },", 2),
            ["{\n  a\n{\n},", "{\n  b\n},"]
        );
    }
}
