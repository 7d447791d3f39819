//! Stage 3: find every `aws_cloudtrail` in a module and judge its `kms_key_id`.

use hcl_edit::expr::{Expression, TraversalOperator};
use hcl_edit::Span;

use crate::key_check::{check_key_for, KeyVerdict, PolicySource};
use crate::key_choice::{offer_key, offer_key_excluding, KeyChoice, Offer, PartialKey};
use crate::model::Status;
use crate::module::{provider_of, BlockRef, Module};
use crate::resolve::{
    is_alias, is_aws_managed_alias, key_arn_problem, Resolver, Step, Value, VariableSource,
    UNKNOWN_PART,
};
use crate::suppress::{find_suppression, today, Suppression};

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
    /// Nothing ctfix can propose; the finding's message says why.
    None,
    /// Generate a dedicated key and point `kms_key_id` at it (replacing any value).
    GenerateKey,
    /// Point `kms_key_id` at an existing key of the module that CloudTrail can use.
    WireKey {
        /// The key and why it was chosen.
        choice: KeyChoice,
    },
    /// Generate a key; the module's keys that grant CloudTrail part of what it needs are
    /// named in the fix's note, so a reviewer can extend one of them instead.
    GenerateKeyNoting {
        /// Those keys.
        partial: Vec<PartialKey>,
    },
    /// `kms_key_id` refers to `aws_kms_key.<k>.key_id` / `.id`: refer to `.arn` instead, and
    /// extend the key's policy too when it lacks the grants.
    UseArn {
        /// Byte range of the attribute name to replace (`key_id` or `id`).
        attribute: std::ops::Range<usize>,
        /// The key's policy problem, if any.
        extend: Option<ExtendPolicy>,
    },
    /// Add the missing CloudTrail statements to the referenced key's policy.
    ExtendPolicy(ExtendPolicy),
    /// `kms_key_id` comes from a module variable whose default leaves it null or empty:
    /// keep the module's interface and create the key only when the caller passes none.
    VariableFallback {
        /// The current `kms_key_id` expression's text (known at plan time).
        expression: String,
    },
    /// Generate a key, but as an unsafe fix: the value it replaces came from a variable, so
    /// the fix discards what a caller may pass.
    GenerateKeyUnsafe,
    /// Generate a key, but as an unsafe fix: `kms_key_id` names a key through an alias that
    /// is not AWS-managed (a literal, or a `data "aws_kms_alias"`). The alias may name an
    /// organization's central or shared key that log readers depend on; replacing it would
    /// move new logs off that key.
    ReplaceAlias {
        /// How `kms_key_id` names the alias: the literal (`"alias/my-cmk"`) or the reference
        /// (`data.aws_kms_alias.central.arn`).
        alias: String,
    },
    /// Generate a key, but as an unsafe fix: `kms_key_id` refers to an `aws_kms_key` the
    /// module does not declare, which is a typo or a file ctfix did not read; swapping in a
    /// new key would hide that.
    ReplaceUndeclaredKey {
        /// The label `kms_key_id` names.
        label: String,
    },
    /// The key is disabled: show how to enable it.
    EnableKey {
        /// The key.
        key: BlockRef,
    },
}

/// A key whose policy lacks CloudTrail's grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtendPolicy {
    /// The key.
    pub key: BlockRef,
    /// Where its policy lives.
    pub source: PolicySource,
    /// The actions CloudTrail is not allowed.
    pub missing: Vec<&'static str>,
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
    /// The suppression comment, for suppressed trails.
    pub suppression: Option<Suppression>,
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
            suppression: None,
        }
    }

    fn noncompliant(reason: &'static str, message: impl Into<String>, remedy: Remedy) -> Self {
        Verdict::new(Status::Noncompliant, reason, message, remedy)
    }

    fn unknown(reason: &'static str, message: impl Into<String>) -> Self {
        Verdict::new(Status::Unknown, reason, message, Remedy::None)
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

/// Judges every trail of a module.
pub fn judge_all(module: &Module, trails: &[Trail]) -> Vec<Verdict> {
    judge_all_with(module, &Resolver::new(module), trails)
}

/// Judges every trail of a module with a given resolver: a called module's, which reads
/// its caller's arguments.
pub fn judge_all_with(module: &Module, resolver: &Resolver<'_>, trails: &[Trail]) -> Vec<Verdict> {
    let today = today();
    let mut verdicts: Vec<Verdict> = trails
        .iter()
        .map(|trail| judge_with(module, resolver, trail, &today))
        .collect();
    wire_each_key_once(module, resolver, trails, &mut verdicts);
    verdicts
}

/// A key wired to one trail of the run is not wired to a later one too: once written, the
/// first trail points at it, and a key another trail uses is no candidate (its policy may
/// name only that trail). The later trail gets the next choice, or a key of its own.
fn wire_each_key_once(
    module: &Module,
    resolver: &Resolver<'_>,
    trails: &[Trail],
    verdicts: &mut [Verdict],
) {
    let mut taken: Vec<String> = Vec::new();
    for (trail, verdict) in trails.iter().zip(verdicts.iter_mut()) {
        let Remedy::WireKey { choice } = &verdict.remedy else {
            continue;
        };
        if taken.contains(&choice.label) {
            verdict.remedy = match offer_key_excluding(module, resolver, trail, &taken) {
                Offer::Wire(choice) => Remedy::WireKey { choice },
                Offer::Partial(partial) => Remedy::GenerateKeyNoting { partial },
                Offer::Nothing => Remedy::GenerateKey,
            };
        }
        if let Remedy::WireKey { choice } = &verdict.remedy {
            taken.push(choice.label.clone());
        }
    }
}

/// Judges one trail's `kms_key_id`.
pub fn judge(module: &Module, trail: &Trail) -> Verdict {
    judge_with(module, &Resolver::new(module), trail, &today())
}

/// What a trail whose `lifecycle.ignore_changes` covers `kms_key_id` is told: Terraform keeps
/// an existing trail's key whatever the configuration says.
pub const IGNORED_KEY_NOTE: &str = "lifecycle.ignore_changes covers kms_key_id, so a change of it never reaches a trail that already exists: remove kms_key_id (or all) from ignore_changes for the key to apply";

/// Whether the trail's `lifecycle { ignore_changes = [...] }` names `kms_key_id`, or is `all`.
pub fn ignores_key_changes(block: &hcl_edit::structure::Block) -> bool {
    block
        .body
        .get_blocks("lifecycle")
        .filter_map(|lifecycle| lifecycle.body.get_attribute("ignore_changes"))
        .any(|attr| {
            let names = |expr: &Expression, name: &str| match expr {
                Expression::Variable(v) => v.as_str() == name,
                Expression::String(s) => s.value().as_str() == name,
                _ => false,
            };
            match &attr.value {
                Expression::Array(items) => items.iter().any(|item| names(item, KMS_KEY_ID_ATTR)),
                other => names(other, "all"),
            }
        })
}

const KMS_KEY_ID_ATTR: &str = "kms_key_id";

fn judge_with(module: &Module, resolver: &Resolver<'_>, trail: &Trail, today: &str) -> Verdict {
    let mut verdict = judge_unqualified(module, resolver, trail, today);
    if verdict.status != Status::Suppressed && ignores_key_changes(module.block(trail.at)) {
        verdict.message = format!("{}; {IGNORED_KEY_NOTE}", verdict.message);
    }
    verdict
}

fn judge_unqualified(
    module: &Module,
    resolver: &Resolver<'_>,
    trail: &Trail,
    today: &str,
) -> Verdict {
    let block = module.block(trail.at);
    let text = &module.files[trail.at.file].source.text;
    if let Some(span) = block.span() {
        if let Some(suppression) = find_suppression(text, span, today) {
            let mut verdict = Verdict::new(
                Status::Suppressed,
                "suppressed",
                format!(
                    "suppressed by `{}` (line {}){}; ctfix leaves it unchanged",
                    suppression.comment,
                    suppression.line,
                    suppression
                        .reason
                        .as_ref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ),
                Remedy::None,
            );
            verdict.suppression = Some(suppression);
            return verdict;
        }
    }
    let Some(attr) = block.body.get_attribute("kms_key_id") else {
        return generate_or_wire(
            module,
            resolver,
            trail,
            Verdict::noncompliant(
                "missing",
                "kms_key_id is not set: logs are encrypted with SSE-S3 only, not a customer-managed key",
                Remedy::GenerateKey,
            ),
        );
    };
    let (value, steps) = resolver.resolve(&attr.value, trail.at.file);
    let mut verdict = classify(module, resolver, trail, &attr.value, &value, &steps);
    let caller_decides = steps.iter().find_map(|s| match s {
        Step::Variable {
            name,
            source: VariableSource::NoDefault,
        } => Some(name),
        _ => None,
    });
    if let (Status::Compliant, Some(name)) = (verdict.status, caller_decides) {
        // Only part of the value is known: the caller's var.<name> decides the rest.
        verdict = Verdict::unknown(
            "variable-no-default",
            format!("kms_key_id depends on var.{name}, which has no default: the module's caller decides ({})", verdict.message),
        );
    }
    if verdict.remedy == Remedy::GenerateKey
        && steps.iter().any(|s| matches!(s, Step::Variable { .. }))
    {
        // Replacing a value a caller may set changes the module's interface.
        verdict.remedy = Remedy::GenerateKeyUnsafe;
    }
    match verdict.remedy {
        Remedy::GenerateKey | Remedy::GenerateKeyUnsafe => {
            generate_or_wire(module, resolver, trail, verdict)
        }
        _ => verdict,
    }
}

/// Judges a `kms_key_id` expression that is not in any file of the module (a `.tf.json`
/// template): status, reason and message only; the remedy is meaningless there.
pub fn judge_detached(module: &Module, resolver: &Resolver<'_>, expr: &Expression) -> Verdict {
    let (value, steps) = resolver.resolve(expr, usize::MAX);
    let trail = Trail {
        at: BlockRef {
            file: usize::MAX,
            index: 0,
        },
        label: String::new(),
        address: String::new(),
        line: 0,
        column: 0,
        meta_argument: None,
        provider: None,
    };
    let mut verdict = classify(module, resolver, &trail, expr, &value, &steps);
    verdict.remedy = Remedy::None;
    verdict
}

/// Where a value came from, for messages: ` (through var.x's default)`.
fn provenance(steps: &[Step]) -> String {
    let parts: Vec<String> = steps
        .iter()
        .map(|step| match step {
            Step::Variable {
                name,
                source: VariableSource::Default,
            } => format!("var.{name}'s default"),
            Step::Variable {
                name,
                source: VariableSource::Tfvars,
            } => format!("var.{name} from tfvars"),
            Step::Variable {
                name,
                source: VariableSource::NoDefault,
            } => format!("var.{name}"),
            Step::Variable {
                name,
                source: VariableSource::Caller,
            } => format!("var.{name} as the caller passes it"),
            Step::Local(name) => format!("local.{name}"),
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" (through {})", parts.join(", "))
    }
}

/// Whether an expression only reads variables, locals (that do the same) and literals, so
/// Terraform knows it at plan time and it may decide a `count`.
fn known_at_plan(module: &Module, expr: &Expression, depth: usize) -> bool {
    if depth > 16 {
        return false;
    }
    let recurse = |e: &Expression| known_at_plan(module, e, depth + 1);
    match expr {
        Expression::Null(_)
        | Expression::Bool(_)
        | Expression::Number(_)
        | Expression::String(_) => true,
        Expression::StringTemplate(t) => t.iter().all(|element| match element {
            hcl_edit::template::Element::Literal(_) => true,
            hcl_edit::template::Element::Interpolation(i) => recurse(&i.expr),
            hcl_edit::template::Element::Directive(_) => false,
        }),
        Expression::Parenthesis(p) => recurse(p.inner()),
        Expression::Array(a) => a.iter().all(recurse),
        Expression::Object(o) => o.iter().all(|(_, v)| recurse(v.expr())),
        Expression::Conditional(c) => {
            recurse(&c.cond_expr) && recurse(&c.true_expr) && recurse(&c.false_expr)
        }
        Expression::FuncCall(call) => call.args.iter().all(recurse),
        Expression::UnaryOp(op) => recurse(&op.expr),
        Expression::BinaryOp(op) => recurse(&op.lhs_expr) && recurse(&op.rhs_expr),
        Expression::Traversal(traversal) => {
            let Expression::Variable(root) = &traversal.expr else {
                return false;
            };
            let indices_known = traversal.operators.iter().all(|op| match op.value() {
                TraversalOperator::Index(index) => recurse(index),
                _ => true,
            });
            match (
                root.as_str(),
                traversal.operators.first().map(|op| op.value()),
            ) {
                ("var", _) => indices_known,
                ("local", Some(TraversalOperator::GetAttr(name))) => {
                    indices_known
                        && module.find_blocks("locals", None, None).any(|at| {
                            module
                                .block(at)
                                .body
                                .get_attribute(name.as_str())
                                .is_some_and(|attr| known_at_plan(module, &attr.value, depth + 1))
                        })
                }
                _ => false,
            }
        }
        Expression::HeredocTemplate(_) | Expression::Variable(_) | Expression::ForExpr(_) => false,
    }
}

fn classify(
    module: &Module,
    resolver: &Resolver<'_>,
    trail: &Trail,
    expr: &Expression,
    value: &Value,
    steps: &[Step],
) -> Verdict {
    let via = provenance(steps);
    let from_default = steps.iter().any(|s| {
        matches!(
            s,
            Step::Variable {
                source: VariableSource::Default | VariableSource::Tfvars,
                ..
            }
        )
    });
    let from_tfvars = steps.iter().any(|s| {
        matches!(
            s,
            Step::Variable {
                source: VariableSource::Tfvars,
                ..
            }
        )
    });
    // A value that came from a variable is the caller's to choose: the fix keeps the
    // variable and falls back to a new key, when that can be written.
    let variable_remedy = || {
        let text = module.text_of(trail.at.file, expr).unwrap_or("");
        if trail.meta_argument.is_none() && !text.contains('\n') && known_at_plan(module, expr, 0) {
            Remedy::VariableFallback {
                expression: text.to_owned(),
            }
        } else {
            Remedy::GenerateKeyUnsafe
        }
    };
    match value {
        Value::Null => {
            let (reason, remedy) = if from_tfvars {
                ("tfvars-null", variable_remedy())
            } else if from_default {
                ("variable-default-null", variable_remedy())
            } else if steps.is_empty() {
                ("null", Remedy::GenerateKey)
            } else {
                ("resolves-to-null", Remedy::GenerateKey)
            };
            Verdict::noncompliant(reason, format!("kms_key_id is null{via}: logs are not encrypted with a customer-managed key"), remedy)
        }
        Value::String(s) if s.trim().is_empty() => {
            let (reason, remedy) = if from_tfvars {
                ("tfvars-empty", variable_remedy())
            } else if from_default {
                ("variable-default-empty", variable_remedy())
            } else if !steps.is_empty() || !matches!(expr, Expression::String(_)) {
                ("resolves-to-empty", Remedy::GenerateKey)
            } else if s.is_empty() {
                ("empty", Remedy::GenerateKey)
            } else {
                ("whitespace", Remedy::GenerateKey)
            };
            let what = if s.is_empty() { "an empty string" } else { "only whitespace" };
            Verdict::noncompliant(reason, format!("kms_key_id is {what}{via}: logs are not encrypted with a customer-managed key"), remedy)
        }
        Value::String(s) | Value::Partial(s) => classify_string(s, &via),
        Value::AwsManagedKey(what) => Verdict::noncompliant(
            "aws-managed-key",
            format!("kms_key_id is the AWS-managed key {}{via}: the control needs a customer-managed key whose policy and rotation you control", what.replace(UNKNOWN_PART, "…")),
            Remedy::GenerateKey,
        ),
        Value::AliasArn(what) => Verdict::noncompliant(
            "alias-arn",
            format!("kms_key_id is an alias ARN ({what}){via}, not a key ARN"),
            // An alias this module declares is its own (the key it targets is handled like
            // any other key of the module); one looked up by a data source may be shared.
            if what.starts_with("data.") {
                Remedy::ReplaceAlias { alias: what.clone() }
            } else {
                Remedy::GenerateKey
            },
        ),
        Value::KeyAttribute { label, attribute } => classify_key_reference(module, resolver, trail, expr, label, attribute, &via),
        Value::KeyId(what) => {
            let remedy = match attribute_span(expr, what.rsplit('.').next().unwrap_or("")) {
                Some(span) if what.starts_with("data.") && expr_is(module, trail, expr, what) => {
                    Remedy::UseArn {
                        attribute: span,
                        extend: None,
                    }
                }
                _ => Remedy::None,
            };
            Verdict::noncompliant(
                "key-id-not-arn",
                format!("kms_key_id is {what}{via}, a key ID; CloudTrail's kms_key_id must be the key's ARN (.arn)"),
                remedy,
            )
        }
        Value::External(what) => Verdict::new(
            Status::Compliant,
            "external-key",
            format!("kms_key_id comes from {what}{via}, outside this module; ctfix cannot verify that it is a customer-managed key CloudTrail can use"),
            Remedy::None,
        ),
        Value::OneOf(values) => {
            let verdicts: Vec<Verdict> = values.iter().map(|v| classify(module, resolver, trail, expr, v, steps)).collect();
            let first = &verdicts[0];
            if verdicts.iter().all(|v| v.status == first.status) && first.status != Status::Noncompliant {
                let mut verdict = first.clone();
                verdict.remedy = Remedy::None;
                verdict
            } else if verdicts.iter().all(|v| v.status == Status::Noncompliant) {
                // An outcome that names a possibly shared key keeps the fix unsafe.
                let remedy = verdicts
                    .iter()
                    .find(|v| matches!(v.remedy, Remedy::ReplaceAlias { .. }))
                    .map_or(Remedy::GenerateKey, |v| v.remedy.clone());
                Verdict::noncompliant(
                    first.reason,
                    format!("kms_key_id is noncompliant whichever way its condition goes{via}: {}", first.message),
                    remedy,
                )
            } else {
                Verdict::unknown(
                    "depends-on-condition",
                    format!("kms_key_id depends on a condition ctfix cannot evaluate under the module's defaults{via}; one outcome is: {}", verdicts.iter().find(|v| v.status == Status::Noncompliant).map_or("", |v| v.message.as_str())),
                )
            }
        }
        Value::Error(error) => Verdict::unknown("evaluation-error", format!("kms_key_id cannot be evaluated{via}: {error}")),
        Value::Unknown(why) => {
            let reason = if steps.iter().any(|s| matches!(s, Step::Variable { source: VariableSource::NoDefault, .. })) {
                "variable-no-default"
            } else {
                "unresolved"
            };
            // The reason already names a variable without a default: not again as provenance.
            let named_in_why = |step: &Step| match step {
                Step::Variable { name, source: VariableSource::NoDefault } => {
                    why.starts_with(&format!("var.{name},"))
                }
                _ => false,
            };
            let shown: Vec<Step> = steps.iter().filter(|s| !named_in_why(s)).cloned().collect();
            Verdict::unknown(reason, format!("kms_key_id depends on {why}{}", provenance(&shown)))
        }
        Value::Bool(_) | Value::Number(_) | Value::List(_) | Value::Object(_) => Verdict::noncompliant(
            "not-a-key-arn",
            format!("kms_key_id is not a string{via}, so not a key ARN"),
            Remedy::GenerateKey,
        ),
    }
}

fn classify_string(s: &str, via: &str) -> Verdict {
    let shown = s.replace(UNKNOWN_PART, "…");
    if is_aws_managed_alias(s) {
        Verdict::noncompliant(
            "aws-managed-key",
            format!("kms_key_id is the AWS-managed key {shown:?}{via}: the control needs a customer-managed key"),
            Remedy::GenerateKey,
        )
    } else if is_alias(s) {
        let reason = if s.starts_with("arn:") {
            "alias-arn"
        } else {
            "alias-name"
        };
        Verdict::noncompliant(
            reason,
            format!("kms_key_id is the alias {shown:?}{via}, not a key ARN (the provider and the control want a key ARN)"),
            Remedy::ReplaceAlias { alias: format!("{shown:?}") },
        )
    } else if let Some(problem) = key_arn_problem(s).filter(|_| s.starts_with("arn:")) {
        Verdict::noncompliant(
            "not-a-key-arn",
            format!("kms_key_id is {shown:?}{via}, which is not a KMS key ARN ({problem})"),
            Remedy::GenerateKey,
        )
    } else if s.starts_with("arn:") {
        Verdict::new(
            Status::Compliant,
            "external-key",
            format!("kms_key_id is the key ARN {shown:?}{via}; ctfix cannot verify that key's policy from here"),
            Remedy::None,
        )
    } else if s.contains(UNKNOWN_PART) && !s.starts_with("arn:") && s.starts_with(UNKNOWN_PART) {
        Verdict::unknown(
            "unresolved",
            format!("kms_key_id is built from values ctfix cannot resolve{via}: {shown:?}"),
        )
    } else {
        Verdict::noncompliant(
            "not-a-key-arn",
            format!("kms_key_id is {shown:?}{via}, which is not a KMS key ARN"),
            Remedy::GenerateKey,
        )
    }
}

fn classify_key_reference(
    module: &Module,
    resolver: &Resolver<'_>,
    trail: &Trail,
    expr: &Expression,
    label: &str,
    attribute: &str,
    via: &str,
) -> Verdict {
    let name = trail_name(module, resolver, trail);
    let verdict = check_key_for(module, resolver, label, name.as_deref());
    let extend = match &verdict {
        KeyVerdict::MissingGrant {
            key,
            missing,
            source,
        } => Some(ExtendPolicy {
            key: *key,
            source: source.clone(),
            missing: missing.clone(),
        }),
        _ => None,
    };
    if attribute != "arn" {
        let span = attribute_span(expr, attribute);
        let remedy = match (&verdict, span) {
            (KeyVerdict::Usable(_) | KeyVerdict::MissingGrant { .. }, Some(span)) => {
                Remedy::UseArn {
                    attribute: span,
                    extend,
                }
            }
            _ => Remedy::None,
        };
        return Verdict::noncompliant(
            "key-id-not-arn",
            format!("kms_key_id refers to aws_kms_key.{label}.{attribute}{via}; CloudTrail's kms_key_id must be the key's ARN (.arn)"),
            remedy,
        );
    }
    match verdict {
        KeyVerdict::Usable(_) => Verdict::new(
            Status::Compliant,
            "key-verified",
            format!("kms_key_id is aws_kms_key.{label}{via}, whose policy lets CloudTrail use it"),
            Remedy::None,
        ),
        KeyVerdict::NotFound => Verdict::noncompliant(
            "key-not-found",
            format!("kms_key_id refers to aws_kms_key.{label}{via}, which this module does not declare"),
            Remedy::ReplaceUndeclaredKey {
                label: label.to_owned(),
            },
        ),
        KeyVerdict::Unreadable => Verdict::unknown(
            "key-unreadable",
            format!("aws_kms_key.{label} is declared in a file ctfix cannot read (JSON syntax or a syntax error)"),
        ),
        KeyVerdict::Disabled(key) => Verdict::noncompliant(
            "key-disabled",
            format!("kms_key_id is aws_kms_key.{label}{via}, which is disabled (is_enabled = false): CloudTrail cannot encrypt with it"),
            Remedy::EnableKey { key },
        ),
        KeyVerdict::NotSymmetric { setting, .. } => Verdict::noncompliant(
            "key-not-symmetric",
            format!("kms_key_id is aws_kms_key.{label}{via}, which is not a symmetric encryption key ({setting}): CloudTrail cannot encrypt with it"),
            Remedy::GenerateKey,
        ),
        KeyVerdict::MissingGrant { missing, .. } => Verdict::noncompliant(
            "key-policy-missing-grant",
            format!(
                "kms_key_id is aws_kms_key.{label}{via}, but its key policy does not allow cloudtrail.amazonaws.com {}: log delivery fails",
                missing.join(" and ")
            ),
            Remedy::ExtendPolicy(extend.expect("missing grant has a policy extension")),
        ),
        KeyVerdict::Denied(_) => Verdict::noncompliant(
            "key-policy-denies",
            format!("kms_key_id is aws_kms_key.{label}{via}, but a Deny statement in its key policy keeps cloudtrail.amazonaws.com from using it; a human must decide which statement goes"),
            Remedy::None,
        ),
        KeyVerdict::OpenToAnyone(_) => Verdict::noncompliant(
            "key-policy-public",
            format!("kms_key_id is aws_kms_key.{label}{via}, whose key policy lets any principal of any account decrypt with it (an Allow to \"*\" that no condition scopes): reading the logs needs no permission of its own; a human must scope that statement"),
            Remedy::None,
        ),
        KeyVerdict::PolicyUnknown(_, why) => Verdict::unknown(
            "key-policy-unknown",
            format!("kms_key_id is aws_kms_key.{label}{via}, but ctfix cannot judge its policy: {why}"),
        ),
    }
}

/// The trail's `name` as far as ctfix can tell (unknown parts marked), or `None`.
pub fn trail_name(module: &Module, resolver: &Resolver<'_>, trail: &Trail) -> Option<String> {
    // A detached trail (a `.tf.json` template) has no block here.
    if trail.at.file >= module.files.len() {
        return None;
    }
    let attr = module.block(trail.at).body.get_attribute("name")?;
    match resolver.value_of(&attr.value, trail.at.file) {
        Value::String(name) | Value::Partial(name) => Some(name),
        _ => None,
    }
}

/// Whether `expr` is written as `text` itself (not reached through a local or variable).
fn expr_is(module: &Module, trail: &Trail, expr: &Expression, text: &str) -> bool {
    trail.at.file < module.files.len()
        && module
            .text_of(trail.at.file, expr)
            .is_some_and(|written| written.trim() == text)
}

/// The byte range of the final `.key_id` / `.id` in `aws_kms_key.<k>.key_id`.
fn attribute_span(expr: &Expression, attribute: &str) -> Option<std::ops::Range<usize>> {
    let Expression::Traversal(traversal) = expr else {
        return None;
    };
    let last = traversal.operators.last()?;
    match last.value() {
        TraversalOperator::GetAttr(ident) if ident.as_str() == attribute => ident.span(),
        _ => None,
    }
}

/// For a trail that needs a key: wire the existing key a reviewer would choose, or generate
/// one (naming the keys that almost fit).
fn generate_or_wire(
    module: &Module,
    resolver: &Resolver<'_>,
    trail: &Trail,
    mut verdict: Verdict,
) -> Verdict {
    if verdict.remedy == Remedy::GenerateKey {
        verdict.remedy = match offer_key(module, resolver, trail) {
            Offer::Wire(choice) => Remedy::WireKey { choice },
            Offer::Partial(partial) => Remedy::GenerateKeyNoting { partial },
            Offer::Nothing => Remedy::GenerateKey,
        };
    }
    verdict
}
