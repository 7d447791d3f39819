//! Property tests: generated trail blocks — attributes in any order, comments of every kind,
//! blank lines, aligned or not, any indentation, LF or CRLF, with or without a final newline or
//! a byte order mark, next to other blocks — hold the invariants of
//! `tests/support/invariants.rs`: the fix applies, re-parses, is idempotent and leaves every
//! byte outside its edits untouched. Suppressed trails are never changed.

#[path = "support/invariants.rs"]
#[allow(dead_code)]
mod invariants;

use ctfix::Status;
use proptest::prelude::*;

/// The shape of `kms_key_id` in a generated trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kms {
    Absent,
    Empty,
    Null,
    Blank,
    /// Set to a key from outside the module: compliant, must not change.
    Set,
}

impl Kms {
    fn value(self) -> Option<&'static str> {
        match self {
            Kms::Absent => None,
            Kms::Empty => Some("\"\""),
            Kms::Null => Some("null"),
            Kms::Blank => Some("\"  \""),
            Kms::Set => Some(
                "\"arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab\"",
            ),
        }
    }
}

/// What goes between two lines of the trail's body.
#[derive(Debug, Clone)]
enum Gap {
    None,
    Blank,
    Comment(&'static str),
}

#[derive(Debug, Clone)]
struct TrailFile {
    label: String,
    /// `(key, value)` in body order, `kms_key_id` among them when present.
    attributes: Vec<(&'static str, String)>,
    gaps: Vec<Gap>,
    trailing_comments: Vec<Option<&'static str>>,
    nested_block: Option<usize>,
    aligned: bool,
    indent: &'static str,
    crlf: bool,
    final_newline: bool,
    bom: bool,
    one_line: bool,
    before: Option<&'static str>,
    after: Option<&'static str>,
    kms: Kms,
}

const OTHER_ATTRIBUTES: [(&str, &str); 8] = [
    ("name", "\"audit\""),
    ("s3_bucket_name", "aws_s3_bucket.logs.id"),
    ("include_global_service_events", "true"),
    ("is_multi_region_trail", "false"),
    ("enable_log_file_validation", "true"),
    ("tags", "{ team = \"security\" }"),
    ("sns_topic_name", "\"alerts\""),
    (
        "cloud_watch_logs_group_arn",
        "\"${aws_cloudwatch_log_group.t.arn}:*\"",
    ),
];

const COMMENTS: [&str; 5] = [
    "# a comment",
    "// another = \"comment\"",
    "/* block { comment } */",
    "# kms_key_id = \"commented out\"",
    "#",
];

const NEIGHBOURS: [&str; 4] = [
    "resource \"aws_s3_bucket\" \"logs\" {\n  bucket = \"logs\"\n}\n",
    "locals {\n  doc = <<-EOT\n    %{ if true }yes%{ endif } ${upper(\"x\")}\n  EOT\n}\n",
    "# trailing remark\n",
    "resource \"aws_kms_key\" \"existing\" {\n  description = \"other\"\n}\n",
];

fn trail_file() -> impl Strategy<Value = TrailFile> {
    let attributes = proptest::sample::subsequence(OTHER_ATTRIBUTES.to_vec(), 0..=6)
        .prop_shuffle()
        .prop_map(|attrs| {
            attrs
                .into_iter()
                .map(|(k, v)| (k, v.to_owned()))
                .collect::<Vec<_>>()
        });
    let kms = prop_oneof![
        Just(Kms::Absent),
        Just(Kms::Empty),
        Just(Kms::Null),
        Just(Kms::Blank),
        Just(Kms::Set),
    ];
    (
        (
            "[a-z][a-z0-9_]{0,12}",
            attributes,
            kms,
            any::<prop::sample::Index>(),
            prop::collection::vec(
                prop_oneof![
                    3 => Just(Gap::None),
                    1 => Just(Gap::Blank),
                    1 => prop::sample::select(COMMENTS.to_vec()).prop_map(Gap::Comment),
                ],
                8,
            ),
            prop::collection::vec(
                prop::option::weighted(0.2, prop::sample::select(COMMENTS.to_vec())),
                8,
            ),
            prop::option::of(0usize..8),
        ),
        (
            any::<bool>(),
            prop::sample::select(vec!["  ", "    ", "\t"]),
            any::<bool>(),
            prop::bool::weighted(0.8),
            prop::bool::weighted(0.1),
            prop::bool::weighted(0.1),
            prop::option::of(prop::sample::select(NEIGHBOURS.to_vec())),
            prop::option::of(prop::sample::select(NEIGHBOURS.to_vec())),
        ),
    )
        .prop_map(
            |(
                (label, mut attributes, kms, at, gaps, trailing_comments, nested_block),
                (aligned, indent, crlf, final_newline, bom, one_line, before, after),
            )| {
                if let Some(value) = kms.value() {
                    let at = at.index(attributes.len() + 1);
                    attributes.insert(at, ("kms_key_id", value.to_owned()));
                }
                TrailFile {
                    label,
                    attributes,
                    gaps,
                    trailing_comments,
                    nested_block,
                    aligned,
                    indent,
                    crlf,
                    final_newline,
                    bom,
                    one_line,
                    before,
                    after,
                    kms,
                }
            },
        )
}

impl TrailFile {
    /// The file's text, with `suppression` as a line of the trail's body when given.
    fn render(&self, suppression: Option<(&str, usize)>) -> Vec<u8> {
        let nl = if self.crlf { "\r\n" } else { "\n" };
        let mut out = String::new();
        if self.bom {
            out.push('\u{feff}');
        }
        if let Some(before) = self.before {
            out.push_str(before);
            out.push('\n');
        }
        let header = format!("resource \"aws_cloudtrail\" \"{}\" {{", self.label);
        if self.one_line && suppression.is_none() {
            // `{}` or `{ key = value }`: at most one attribute on one line.
            out.push_str(&header);
            let sole = self
                .attributes
                .iter()
                .find(|(key, _)| *key == "kms_key_id")
                .or(self.attributes.first());
            if let Some((key, value)) = sole {
                out.push_str(&format!(" {key} = {value} "));
            }
            out.push_str("}\n");
        } else {
            out.push_str(&header);
            out.push('\n');
            let width = self
                .attributes
                .iter()
                .map(|(k, _)| k.len())
                .max()
                .unwrap_or(0);
            for (i, (key, value)) in self.attributes.iter().enumerate() {
                if let Some((comment, at)) = suppression {
                    if at % (self.attributes.len() + 1) == i {
                        out.push_str(&format!("{}{comment}\n", self.indent));
                    }
                }
                if self.nested_block == Some(i) {
                    out.push_str(&format!(
                        "{0}event_selector {{\n{0}{0}read_write_type = \"All\"\n{0}}}\n",
                        self.indent
                    ));
                }
                match &self.gaps[i % self.gaps.len()] {
                    Gap::None => {}
                    Gap::Blank => out.push('\n'),
                    Gap::Comment(comment) => {
                        out.push_str(&format!("{}{comment}\n", self.indent));
                    }
                }
                let pad = if self.aligned { width } else { key.len() };
                out.push_str(&format!("{}{key:<pad$} = {value}", self.indent));
                if let Some(comment) = self.trailing_comments[i % self.trailing_comments.len()] {
                    out.push_str(&format!(" {comment}"));
                }
                out.push('\n');
            }
            if let Some((comment, at)) = suppression {
                if at % (self.attributes.len() + 1) == self.attributes.len() {
                    out.push_str(&format!("{}{comment}\n", self.indent));
                }
            }
            out.push_str("}\n");
        }
        if let Some(after) = self.after {
            out.push('\n');
            out.push_str(after);
        }
        if !self.final_newline {
            while out.ends_with('\n') {
                out.pop();
            }
        }
        let out = if self.crlf {
            out.replace('\n', nl)
        } else {
            out
        };
        out.into_bytes()
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn fix_applies_reparses_is_idempotent_and_keeps_every_other_byte(file in trail_file()) {
        let bytes = file.render(None);
        let outcome = invariants::check_invariants(&bytes);
        prop_assert!(outcome.parsed, "generated file does not parse:\n{}", String::from_utf8_lossy(&bytes));
        let trail = outcome
            .trails
            .iter()
            .find(|(address, _)| *address == format!("aws_cloudtrail.{}", file.label))
            .expect("the trail is found");
        match file.kms {
            Kms::Set => {
                prop_assert_eq!(trail.1, Status::Compliant);
                prop_assert!(outcome.fixed.is_none(), "a compliant trail was changed");
            }
            _ => {
                prop_assert_eq!(trail.1, Status::Noncompliant);
                let fixed = outcome.fixed.as_deref().expect("a fix for a noncompliant trail");
                prop_assert!(fixed.contains("kms_key_id"));
                // (Inserted text follows the file's line endings: checked by the invariants.)
            }
        }
    }

    #[test]
    fn suppressed_trails_are_never_changed(
        file in trail_file(),
        at in 0usize..8,
        comment in prop::sample::select(vec![
            "# checkov:skip=CKV_AWS_35: reason",
            "#checkov:skip=CKV_AWS_35:logs are encrypted by the bucket policy",
        ]),
    ) {
        let bytes = file.render(Some((comment, at)));
        let outcome = invariants::check_invariants(&bytes);
        prop_assert!(outcome.parsed, "generated file does not parse:\n{}", String::from_utf8_lossy(&bytes));
        let trail = outcome
            .trails
            .iter()
            .find(|(address, _)| *address == format!("aws_cloudtrail.{}", file.label))
            .expect("the trail is found");
        prop_assert_eq!(trail.1, Status::Suppressed);
        prop_assert!(outcome.fixed.is_none());
    }
}
