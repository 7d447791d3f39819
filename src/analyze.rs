//! Stage 3: find every `aws_cloudtrail` in a module and judge its `kms_key_id`.

use hcl_edit::expr::Expression;
use hcl_edit::Span;

use crate::model::Status;
use crate::module::{provider_of, BlockRef, Module};

/// A trail's `count` or `for_each`, which the generated key must copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaArgument {
    /// `count = <expr>`; instances are addressed with `[count.index]`.
    Count(String),
    /// `for_each = <expr>`; instances are addressed with `[each.key]`.
    ForEach(String),
}

impl MetaArgument {
    /// `count` or `for_each`.
    pub fn name(&self) -> &'static str {
        match self {
            MetaArgument::Count(_) => "count",
            MetaArgument::ForEach(_) => "for_each",
        }
    }

    /// The expression text.
    pub fn expression(&self) -> &str {
        match self {
            MetaArgument::Count(text) | MetaArgument::ForEach(text) => text,
        }
    }

    /// The index that selects "this instance" inside the resource.
    pub fn instance_index(&self) -> &'static str {
        match self {
            MetaArgument::Count(_) => "[count.index]",
            MetaArgument::ForEach(_) => "[each.key]",
        }
    }
}

/// One `resource "aws_cloudtrail"` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trail {
    /// Where the block is.
    pub at: BlockRef,
    /// Its second label.
    pub label: String,
    /// `aws_cloudtrail.<label>`.
    pub address: String,
    /// 1-based line of the block.
    pub line: usize,
    /// 1-based column of the block.
    pub column: usize,
    /// `count` / `for_each`, if any.
    pub meta_argument: Option<MetaArgument>,
    /// The `provider` meta-argument's text, if any.
    pub provider: Option<String>,
}

/// What the fix stage should do for a trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remedy {
    /// Nothing to do (compliant, suppressed, or nothing ctfix can safely propose).
    None,
    /// Generate a dedicated key and point `kms_key_id` at it.
    GenerateKey,
}

/// The judgement on one trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The status.
    pub status: Status,
    /// A short stable code.
    pub reason: &'static str,
    /// One sentence for a human.
    pub message: String,
    /// What the fix stage should do.
    pub remedy: Remedy,
}

impl Verdict {
    fn new(
        status: Status,
        reason: &'static str,
        message: impl Into<String>,
        remedy: Remedy,
    ) -> Self {
        Verdict {
            status,
            reason,
            message: message.into(),
            remedy,
        }
    }
}

/// Every `aws_cloudtrail` resource in the module's target files, in file order.
pub fn find_trails(module: &Module) -> Vec<Trail> {
    module
        .find_blocks("resource", Some("aws_cloudtrail"), None)
        .filter(|at| module.files[at.file].is_target)
        .filter_map(|at| {
            let block = module.block(at);
            let label = block.labels.get(1)?.as_str().to_owned();
            let source = &module.files[at.file].source;
            let start = block.ident.span().map_or(0, |r| r.start);
            let (line, column) = source.line_col(start);
            let meta_text = |name: &str| {
                block
                    .body
                    .get_attribute(name)
                    .and_then(|attr| module.text_of(at.file, &attr.value))
                    .map(str::to_owned)
            };
            let meta_argument = meta_text("count")
                .map(MetaArgument::Count)
                .or_else(|| meta_text("for_each").map(MetaArgument::ForEach));
            Some(Trail {
                at,
                address: format!("aws_cloudtrail.{label}"),
                label,
                line,
                column,
                meta_argument,
                provider: provider_of(&source.text, block),
            })
        })
        .collect()
}

/// Judges a trail's `kms_key_id`.
pub fn judge(module: &Module, trail: &Trail) -> Verdict {
    let block = module.block(trail.at);
    let Some(attr) = block.body.get_attribute("kms_key_id") else {
        return Verdict::new(
            Status::Noncompliant,
            "missing",
            "kms_key_id is not set: logs are encrypted with SSE-S3 only, not a customer-managed key",
            Remedy::GenerateKey,
        );
    };
    match &attr.value {
        Expression::Null(_) => Verdict::new(
            Status::Noncompliant,
            "null",
            "kms_key_id is null: logs are not encrypted with a customer-managed key",
            Remedy::GenerateKey,
        ),
        Expression::String(value) if value.is_empty() => Verdict::new(
            Status::Noncompliant,
            "empty",
            "kms_key_id is an empty string: logs are not encrypted with a customer-managed key",
            Remedy::GenerateKey,
        ),
        Expression::String(value) if value.trim().is_empty() => Verdict::new(
            Status::Noncompliant,
            "whitespace",
            "kms_key_id is only whitespace: logs are not encrypted with a customer-managed key",
            Remedy::GenerateKey,
        ),
        _ => Verdict::new(Status::Compliant, "set", "kms_key_id is set", Remedy::None),
    }
}
