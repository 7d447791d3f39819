//! Evaluating KMS key policies (IAM policy JSON) for a request: does this policy let
//! CloudTrail use the key, and can the account still administer it?
//!
//! [`evaluate`] follows the AWS IAM policy evaluation logic for one resource-based policy: an
//! applicable `Deny` wins over everything, otherwise an applicable `Allow` allows, otherwise
//! the request is not allowed (the implicit deny). A statement applies when its `Principal` /
//! `NotPrincipal`, `Action` / `NotAction`, `Resource` / `NotResource` and `Condition` all
//! match the [`Request`].
//!
//! What is modelled:
//! - `Statement` as one object or an array; a policy given as a JSON *string* (as KMS's
//!   `GetKeyPolicy` returns it) is parsed first.
//! - `Action` / `NotAction` as a string or an array, with `*` and `?` wildcards, compared
//!   without regard to case.
//! - `Principal` / `NotPrincipal`: `"*"` and `{"AWS": "*"}` (every principal, service
//!   principals included, as IAM documents them to be equivalent); `{"AWS": ...}` entries that
//!   are an ARN (matched exactly), a 12-digit account id, or `arn:<partition>:iam::<account>:root`
//!   (any principal of that account, whose IAM policies are assumed to grant what the key
//!   policy delegates; [`evaluate_key_policy_alone`] reads them as the account root alone, for
//!   what the key policy grants by itself); `{"Service": ...}` (compared without regard to
//!   case).
//! - `Resource` / `NotResource`: a key policy is only ever evaluated for its own key, so an
//!   entry names the key when it is `*` or a KMS key ARN pattern covering every key
//!   (`arn:*:kms:*:*:key/*`); one naming a single key may name another key, so it is unknown.
//! - Conditions: `String{Equals,NotEquals,EqualsIgnoreCase,NotEqualsIgnoreCase,Like,NotLike}`,
//!   `Arn{Equals,Like,NotEquals,NotLike}`, `Bool`, `Null`,
//!   `Numeric{Equals,NotEquals,LessThan,LessThanEquals,GreaterThan,GreaterThanEquals}`, each
//!   with the `IfExists` suffix and the `ForAnyValue:` / `ForAllValues:` prefixes. Condition
//!   keys are compared without regard to case. The values of one key are ORed; keys and
//!   operators are ANDed. A key missing from the context makes a positive operator false and a
//!   negated one true (`IfExists`: true either way; `ForAllValues:`: true; `ForAnyValue:`:
//!   false).
//!
//! When in doubt the evaluator is pessimistic: a statement it cannot read (an unknown
//! condition operator such as `DateGreaterThan` or `IpAddress`, a malformed element) never
//! allows, and — when conditions are evaluated — is taken to deny if it is a `Deny`. In static
//! analysis such a `Deny` gives [`Decision::Undecided`]: never an allow.
//!
//! ## Limitations
//! - Policy variables (`${aws:username}`) are not substituted: a comparison with one is
//!   unknown (an Allow does not apply; a Deny does, or in static analysis is undecided).
//! - `Date*`, `IpAddress`, `Binary*` operators are not evaluated (see above).
//! - One policy is evaluated on its own: identity policies, grants, SCPs and permission
//!   boundaries are not considered.

use std::collections::BTreeMap;

use serde_json::Value;

/// Who makes the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal<'a> {
    /// An AWS service acting on its own behalf, e.g. `cloudtrail.amazonaws.com`.
    Service(&'a str),
    /// An IAM principal (user, role or the account root) and the account it belongs to.
    Aws {
        /// The principal's ARN, e.g. `arn:aws:iam::123456789012:role/admin`.
        arn: &'a str,
        /// The 12-digit id of the principal's account.
        account: &'a str,
    },
}

/// A request to evaluate against a key policy.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Who asks.
    pub principal: Principal<'a>,
    /// The concrete action, e.g. `kms:GenerateDataKey`.
    pub action: &'a str,
    /// The request context: condition key → values (one for a single-valued key).
    pub context: &'a BTreeMap<String, Vec<String>>,
}

/// The outcome of [`evaluate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// An applicable `Allow` and no applicable `Deny`.
    Allowed,
    /// An applicable `Deny` (which wins over any `Allow`).
    ExplicitlyDenied,
    /// No applicable statement: the implicit deny.
    NotAllowed,
    /// A `Deny` may apply: its condition (or another element) cannot be decided statically.
    /// Only [`Conditions::AssumeAllowConditionsMet`] gives it; never counts as allowed.
    Undecided,
}

/// How conditions are treated.
///
/// `Evaluate` checks them against `request.context` (for concrete policies read back from
/// AWS). `AssumeAllowConditionsMet` is for static analysis of Terraform, where condition values
/// are often unknown: conditions are evaluated against the context in three values, where a
/// key the context does not hold is unknown (unless the principal never carries it, see
/// [`ABSENT_FOR_SERVICES`]) and so is any value holding [`UNKNOWN`] or a `${…}` the policy
/// could not resolve. An Allow whose conditions are unknown is assumed to apply (the policy
/// is taken as written for this trail); one whose conditions are false does not. A Deny whose
/// conditions hold applies; one that cannot be decided gives [`Decision::Undecided`] — never
/// an allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conditions {
    /// Evaluate every condition against the request context.
    Evaluate,
    /// Static analysis: an `Allow`'s undecidable conditions are taken as met; a `Deny` that
    /// may apply is [`Decision::Undecided`].
    AssumeAllowConditionsMet,
}

/// Marks an unknown part of a context value (a trail ARN whose region, account or name is not
/// known statically). The same character the resolver uses for unknown parts.
pub const UNKNOWN: char = crate::resolve::UNKNOWN_PART;

/// Condition keys a request made by an AWS service principal on its own behalf never carries
/// (IAM: they describe an IAM principal's organization and tags). A negated operator or
/// `…IfExists` on one of them holds for CloudTrail.
pub const ABSENT_FOR_SERVICES: [&str; 3] = [
    "aws:PrincipalOrgID",
    "aws:PrincipalOrgPaths",
    "aws:PrincipalTag/",
];

/// The service principal of CloudTrail.
pub const CLOUDTRAIL_SERVICE: &str = "cloudtrail.amazonaws.com";

/// How an `AWS` principal entry that names an account (`arn:<partition>:iam::<account>:root`
/// or the 12-digit id) is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AccountEntries {
    /// It names every principal of the account: the policy is judged on the assumption that
    /// the account's IAM policies grant what it delegates (what [`evaluate`] does).
    EveryPrincipal,
    /// It names the account root alone: what the key policy grants by itself, with no IAM
    /// policy in the account granting anything (what [`evaluate_key_policy_alone`] does).
    RootOnly,
}

/// Evaluates `policy` (a policy document, or a JSON string holding one) for `request`.
///
/// An entry naming the account (`arn:<partition>:iam::<account>:root`, or the account id)
/// counts for every principal of the account: the key policy delegates to IAM, and the
/// account's IAM policies are assumed to grant what it delegates. See
/// [`evaluate_key_policy_alone`] for what the key policy grants by itself.
pub fn evaluate(policy: &Value, request: &Request, conditions: Conditions) -> Decision {
    evaluate_as(policy, request, conditions, AccountEntries::EveryPrincipal)
}

/// Evaluates `policy` for `request` as if no IAM policy of the account granted anything: an
/// entry naming the account (its root ARN or id) only lets the account's IAM policies grant
/// access, so here it names the account root alone. This is what the key policy grants by
/// itself: a statement with `Principal = { AWS = "*" }` or the request principal's own ARN
/// still applies.
pub fn evaluate_key_policy_alone(
    policy: &Value,
    request: &Request,
    conditions: Conditions,
) -> Decision {
    evaluate_as(policy, request, conditions, AccountEntries::RootOnly)
}

fn evaluate_as(
    policy: &Value,
    request: &Request,
    conditions: Conditions,
    accounts: AccountEntries,
) -> Decision {
    let parsed;
    let policy = match policy {
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(value) => {
                parsed = value;
                &parsed
            }
            Err(_) => return Decision::NotAllowed,
        },
        other => other,
    };
    let statements: &[Value] = match policy.get("Statement") {
        Some(Value::Array(items)) => items,
        Some(item @ Value::Object(_)) => std::slice::from_ref(item),
        _ => return Decision::NotAllowed,
    };
    let mut allowed = false;
    let mut undecided = false;
    for statement in statements {
        match statement.get("Effect").and_then(Value::as_str) {
            Some("Deny") => match applies(statement, request, conditions, accounts, Effect::Deny) {
                Match::Yes => return Decision::ExplicitlyDenied,
                Match::Unknown => undecided = true,
                Match::No => {}
            },
            Some("Allow") => {
                allowed = allowed
                    || applies(statement, request, conditions, accounts, Effect::Allow)
                        == Match::Yes;
            }
            _ => {}
        }
    }
    if undecided {
        Decision::Undecided
    } else if allowed {
        Decision::Allowed
    } else {
        Decision::NotAllowed
    }
}

/// Whether `policy` lets CloudTrail use the key for the trail `trail_arn` of `account`: both
/// `kms:GenerateDataKey*` (tested with `kms:GenerateDataKey`) and `kms:DescribeKey` must be
/// allowed to `cloudtrail.amazonaws.com` with the context CloudTrail sends (see
/// [`cloudtrail_decisions`]). `Err` lists the actions that are not allowed.
pub fn cloudtrail_can_use_key(
    policy: &Value,
    trail_arn: &str,
    account: &str,
    conditions: Conditions,
) -> Result<(), Vec<&'static str>> {
    let missing: Vec<&'static str> = cloudtrail_decisions(policy, trail_arn, account, conditions)
        .into_iter()
        .filter(|(_, decision)| *decision != Decision::Allowed)
        .map(|(name, _)| name)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing)
    }
}

/// The decisions on CloudTrail's two calls for the trail `trail_arn` of `account`, named
/// `kms:GenerateDataKey*` and `kms:DescribeKey`. The context is what CloudTrail's requests
/// carry: `aws:SourceArn` and `kms:EncryptionContext:aws:cloudtrail:arn` (the trail's ARN),
/// `aws:SourceAccount`, `aws:PrincipalIsAWSService = true`, `aws:PrincipalServiceName`, and
/// `aws:SecureTransport = true`. In static analysis `trail_arn` and `account` may hold
/// [`UNKNOWN`] parts, and any other key is unknown unless a service never carries it.
pub fn cloudtrail_decisions(
    policy: &Value,
    trail_arn: &str,
    account: &str,
    conditions: Conditions,
) -> [(&'static str, Decision); 2] {
    let context: BTreeMap<String, Vec<String>> = [
        ("aws:SourceArn", trail_arn),
        ("aws:SourceAccount", account),
        ("kms:EncryptionContext:aws:cloudtrail:arn", trail_arn),
        ("aws:PrincipalIsAWSService", "true"),
        ("aws:PrincipalServiceName", CLOUDTRAIL_SERVICE),
        ("aws:SecureTransport", "true"),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), vec![value.to_owned()]))
    .collect();
    [
        ("kms:GenerateDataKey*", "kms:GenerateDataKey"),
        ("kms:DescribeKey", "kms:DescribeKey"),
    ]
    .map(|(name, action)| {
        let request = Request {
            principal: Principal::Service(CLOUDTRAIL_SERVICE),
            action,
            context: &context,
        };
        (name, evaluate(policy, &request, conditions))
    })
}

/// Whether any principal of any account may decrypt with the key by the key policy alone: an
/// `Allow` to `"*"` (or `{"AWS": "*"}`) whose conditions do not keep out a principal of a
/// foreign account. The control exists so that reading the logs needs a `kms:Decrypt`
/// permission of its own; such a policy gives it to everyone.
pub fn anyone_can_decrypt(policy: &Value) -> bool {
    const STRANGER: &str = "arn:aws:iam::000000000000:role/anyone";
    let context: BTreeMap<String, Vec<String>> = [
        ("aws:PrincipalArn", STRANGER),
        ("aws:PrincipalAccount", "000000000000"),
        ("kms:CallerAccount", "000000000000"),
        ("aws:PrincipalIsAWSService", "false"),
        ("aws:SecureTransport", "true"),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), vec![value.to_owned()]))
    .collect();
    let request = Request {
        principal: Principal::Aws {
            arn: STRANGER,
            account: "000000000000",
        },
        action: "kms:Decrypt",
        context: &context,
    };
    evaluate_key_policy_alone(policy, &request, Conditions::Evaluate) == Decision::Allowed
}

/// Whether the account root `arn:<partition>:iam::<account>:root` may still administer the
/// key: `kms:PutKeyPolicy`, `kms:ScheduleKeyDeletion` and `kms:DescribeKey` are all allowed.
pub fn account_can_administer_key(
    policy: &Value,
    partition: &str,
    account: &str,
    conditions: Conditions,
) -> bool {
    let arn = format!("arn:{partition}:iam::{account}:root");
    let context: BTreeMap<String, Vec<String>> = [
        ("aws:PrincipalArn", arn.as_str()),
        ("aws:PrincipalAccount", account),
        ("kms:CallerAccount", account),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), vec![value.to_owned()]))
    .collect();
    [
        "kms:PutKeyPolicy",
        "kms:ScheduleKeyDeletion",
        "kms:DescribeKey",
    ]
    .into_iter()
    .all(|action| {
        let request = Request {
            principal: Principal::Aws { arn: &arn, account },
            action,
            context: &context,
        };
        evaluate(policy, &request, conditions) == Decision::Allowed
    })
}

/// A statement's effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

/// Whether part of a statement matches: `Unknown` when it cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Match {
    Yes,
    No,
    Unknown,
}

impl Match {
    fn from_bool(value: bool) -> Match {
        if value {
            Match::Yes
        } else {
            Match::No
        }
    }

    /// Logical AND: any `No` wins, then any `Unknown`.
    fn and(self, other: Match) -> Match {
        match (self, other) {
            (Match::No, _) | (_, Match::No) => Match::No,
            (Match::Unknown, _) | (_, Match::Unknown) => Match::Unknown,
            _ => Match::Yes,
        }
    }

    /// Logical NOT (`Unknown` stays unknown).
    fn not(self) -> Match {
        match self {
            Match::Yes => Match::No,
            Match::No => Match::Yes,
            Match::Unknown => Match::Unknown,
        }
    }

    /// Logical OR over entries: any `Yes` wins, then any `Unknown`.
    fn any(items: impl IntoIterator<Item = Match>) -> Match {
        let mut result = Match::No;
        for item in items {
            match item {
                Match::Yes => return Match::Yes,
                Match::Unknown => result = Match::Unknown,
                Match::No => {}
            }
        }
        result
    }
}

/// Whether a statement applies to the request. An unreadable element never lets an `Allow`
/// apply. For a `Deny`, `Unknown` is returned only in static analysis (see [`Conditions`]);
/// when conditions are evaluated an unreadable `Deny` applies.
fn applies(
    statement: &Value,
    request: &Request,
    conditions: Conditions,
    accounts: AccountEntries,
    effect: Effect,
) -> Match {
    let static_analysis = conditions == Conditions::AssumeAllowConditionsMet;
    let condition_match = match statement.get("Condition") {
        None | Some(Value::Null) => Match::Yes,
        Some(Value::Object(operators)) if operators.is_empty() => Match::Yes,
        Some(condition) => {
            let found = conditions_match(condition, request, static_analysis);
            match (static_analysis, effect, found) {
                (true, Effect::Allow, Match::Unknown) => Match::Yes,
                _ => found,
            }
        }
    };
    let matched = principal_match(statement, &request.principal, accounts)
        .and(action_match(statement, request.action))
        .and(resource_match(statement))
        .and(condition_match);
    match (effect, matched) {
        (Effect::Allow, Match::Yes) => Match::Yes,
        (Effect::Allow, _) => Match::No,
        (Effect::Deny, Match::Unknown) if !static_analysis => Match::Yes,
        (Effect::Deny, matched) => matched,
    }
}

/// The strings of an element that is a string or an array of strings; `None` otherwise.
fn strings(value: &Value) -> Option<Vec<&str>> {
    match value {
        Value::String(text) => Some(vec![text.as_str()]),
        Value::Array(items) => items.iter().map(Value::as_str).collect(),
        _ => None,
    }
}

/// `Element` or `NotElement`: whether the element's entries name the request (`entry_matches`
/// tells for the element's value), negated for `NotElement`.
fn positive_or_negated(
    statement: &Value,
    element: &str,
    not_element: &str,
    entry_matches: impl Fn(&Value) -> Match,
) -> Match {
    match (statement.get(element), statement.get(not_element)) {
        (Some(value), None) => entry_matches(value),
        (None, Some(value)) => entry_matches(value).not(),
        // Both or neither: the statement is malformed.
        _ => Match::Unknown,
    }
}

fn action_match(statement: &Value, action: &str) -> Match {
    positive_or_negated(statement, "Action", "NotAction", |value| {
        match strings(value) {
            Some(patterns) => Match::from_bool(patterns.iter().any(|p| glob(p, action, true))),
            None => Match::Unknown,
        }
    })
}

fn resource_match(statement: &Value) -> Match {
    positive_or_negated(
        statement,
        "Resource",
        "NotResource",
        |value| match strings(value) {
            Some(patterns) => Match::any(patterns.iter().map(|p| names_this_key(p))),
            None => Match::Unknown,
        },
    )
}

/// Whether a `Resource` entry names the key the policy is attached to: `*` or a KMS key ARN
/// pattern covering every key (`arn:<partition>:kms:<region>:<account>:key/*`, wildcards
/// allowed; the region and account are taken as the key's own). A pattern naming one key —
/// perhaps another key — is `Unknown`: the policy is evaluated without knowing this key's id.
fn names_this_key(pattern: &str) -> Match {
    if pattern == "*" {
        return Match::Yes;
    }
    let parts: Vec<&str> = pattern.splitn(6, ':').collect();
    if parts.len() != 6 || !glob(parts[0], "arn", false) {
        return Match::No;
    }
    let service = parts[2];
    let resource = parts[5];
    if !glob(service, "kms", true)
        || !(resource.starts_with("key/") || glob(resource, "key/", false))
    {
        return Match::No;
    }
    // Covers every key when its id part matches any id.
    let id = resource.strip_prefix("key/").unwrap_or(resource);
    if id.chars().all(|c| c == '*') && !id.is_empty() || resource.chars().all(|c| c == '*') {
        Match::Yes
    } else {
        Match::Unknown
    }
}

fn principal_match(statement: &Value, principal: &Principal, accounts: AccountEntries) -> Match {
    positive_or_negated(statement, "Principal", "NotPrincipal", |value| {
        principal_entry_match(value, principal, accounts)
    })
}

/// Whether a `Principal` element's value names the request's principal.
fn principal_entry_match(value: &Value, principal: &Principal, accounts: AccountEntries) -> Match {
    let map = match value {
        Value::String(text) if text == "*" => return Match::Yes,
        Value::Object(map) => map,
        _ => return Match::Unknown,
    };
    Match::any(map.iter().map(|(kind, entries)| {
        let Some(entries) = strings(entries) else {
            return Match::Unknown;
        };
        Match::from_bool(entries.iter().any(|entry| match kind.as_str() {
            "AWS" => aws_entry_names(entry, principal, accounts),
            "Service" => {
                *entry == "*"
                    || matches!(principal, Principal::Service(name) if name.eq_ignore_ascii_case(entry))
            }
            _ => false,
        }))
    }))
}

/// Whether an `AWS` principal entry names `principal`: `*`, the principal's own ARN, or the
/// account id / the account's root ARN (any principal of the account, or with
/// [`AccountEntries::RootOnly`] the account root alone).
fn aws_entry_names(entry: &str, principal: &Principal, accounts: AccountEntries) -> bool {
    if entry == "*" {
        return true;
    }
    let Principal::Aws { arn, account } = principal else {
        return false;
    };
    if entry == *arn {
        return true;
    }
    let names_account = if is_account_id(entry) {
        entry == *account
    } else {
        let parts: Vec<&str> = entry.splitn(6, ':').collect();
        match parts.as_slice() {
            [head, partition, "iam", "", entry_account, "root"] => {
                let same_partition = arn.split(':').nth(1).is_none_or(|own| own == *partition);
                *head == "arn" && entry_account == account && same_partition
            }
            _ => false,
        }
    };
    names_account
        && match accounts {
            AccountEntries::EveryPrincipal => true,
            AccountEntries::RootOnly => {
                let parts: Vec<&str> = arn.splitn(6, ':').collect();
                matches!(parts.as_slice(), ["arn", _, "iam", "", own, "root"] if own == account)
            }
        }
}

fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

/// The `Condition` element: every operator and every key must hold. In static analysis a key
/// the context does not hold is unknown, unless the principal never carries it.
fn conditions_match(condition: &Value, request: &Request, static_analysis: bool) -> Match {
    let Value::Object(operators) = condition else {
        return Match::Unknown;
    };
    let mut result = Match::Yes;
    for (name, block) in operators {
        let (Some(operator), Value::Object(keys)) = (Operator::parse(name), block) else {
            result = result.and(Match::Unknown);
            continue;
        };
        for (key, values) in keys {
            let Some(values) = condition_values(values) else {
                result = result.and(Match::Unknown);
                continue;
            };
            let found = match lookup(request.context, key) {
                Some(found) => Found::Values(found),
                None if !static_analysis || never_carried(&request.principal, key) => Found::Absent,
                None => Found::Unknown,
            };
            result = result.and(operator.holds(found, &values));
            if result == Match::No {
                return Match::No;
            }
        }
    }
    result
}

/// What the context holds for a condition key.
#[derive(Debug, Clone, Copy)]
enum Found<'c> {
    Values(&'c [String]),
    Absent,
    Unknown,
}

/// Whether a request by `principal` never carries the condition key `key`.
fn never_carried(principal: &Principal, key: &str) -> bool {
    matches!(principal, Principal::Service(_))
        && ABSENT_FOR_SERVICES.iter().any(|absent| {
            // `get`: the key is the user's text, and may hold any character there.
            key.get(..absent.len())
                .is_some_and(|start| start.eq_ignore_ascii_case(absent))
                && (absent.ends_with('/') || key.len() == absent.len())
        })
}

/// The values of a condition key: strings, numbers and booleans, alone or in an array.
fn condition_values(value: &Value) -> Option<Vec<String>> {
    fn scalar(value: &Value) -> Option<String> {
        match value {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            Value::Bool(flag) => Some(flag.to_string()),
            _ => None,
        }
    }
    match value {
        Value::Array(items) if !items.is_empty() => items.iter().map(scalar).collect(),
        Value::Array(_) => None,
        other => scalar(other).map(|value| vec![value]),
    }
}

/// The context values of a key (keys compare without regard to case); `None` when absent.
fn lookup<'c>(context: &'c BTreeMap<String, Vec<String>>, key: &str) -> Option<&'c [String]> {
    context
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(key))
        .map(|(_, values)| values.as_slice())
        .filter(|values| !values.is_empty())
}

/// `ForAnyValue:` / `ForAllValues:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetQualifier {
    AnyValue,
    AllValues,
}

/// How one value is compared with one policy value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    ArnLike,
    Bool,
    Numeric(NumericOp),
    Null,
}

/// The comparison of a `Numeric*` operator (`NotEquals` is `Equals` negated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumericOp {
    Equals,
    LessThan,
    LessThanEquals,
    GreaterThan,
    GreaterThanEquals,
}

impl NumericOp {
    fn holds(self, value: f64, policy: f64) -> bool {
        match self {
            NumericOp::Equals => value == policy,
            NumericOp::LessThan => value < policy,
            NumericOp::LessThanEquals => value <= policy,
            NumericOp::GreaterThan => value > policy,
            NumericOp::GreaterThanEquals => value >= policy,
        }
    }
}

/// A parsed condition operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Operator {
    qualifier: Option<SetQualifier>,
    comparison: Comparison,
    negated: bool,
    if_exists: bool,
}

impl Operator {
    /// Parses an operator name (without regard to case); `None` for operators not modelled.
    fn parse(name: &str) -> Option<Operator> {
        let lower = name.to_ascii_lowercase();
        let (qualifier, rest) = if let Some(rest) = lower.strip_prefix("foranyvalue:") {
            (Some(SetQualifier::AnyValue), rest)
        } else if let Some(rest) = lower.strip_prefix("forallvalues:") {
            (Some(SetQualifier::AllValues), rest)
        } else {
            (None, lower.as_str())
        };
        let (base, if_exists) = match rest.strip_suffix("ifexists") {
            Some(base) => (base, true),
            None => (rest, false),
        };
        let (comparison, negated) = match base {
            "stringequals" => (Comparison::StringEquals, false),
            "stringnotequals" => (Comparison::StringEquals, true),
            "stringequalsignorecase" => (Comparison::StringEqualsIgnoreCase, false),
            "stringnotequalsignorecase" => (Comparison::StringEqualsIgnoreCase, true),
            "stringlike" => (Comparison::StringLike, false),
            "stringnotlike" => (Comparison::StringLike, true),
            "arnequals" | "arnlike" => (Comparison::ArnLike, false),
            "arnnotequals" | "arnnotlike" => (Comparison::ArnLike, true),
            "bool" => (Comparison::Bool, false),
            "numericequals" => (Comparison::Numeric(NumericOp::Equals), false),
            "numericnotequals" => (Comparison::Numeric(NumericOp::Equals), true),
            "numericlessthan" => (Comparison::Numeric(NumericOp::LessThan), false),
            "numericlessthanequals" => (Comparison::Numeric(NumericOp::LessThanEquals), false),
            "numericgreaterthan" => (Comparison::Numeric(NumericOp::GreaterThan), false),
            "numericgreaterthanequals" => {
                (Comparison::Numeric(NumericOp::GreaterThanEquals), false)
            }
            "null" if !if_exists => (Comparison::Null, false),
            _ => return None,
        };
        Some(Operator {
            qualifier,
            comparison,
            negated,
            if_exists,
        })
    }

    /// Whether the condition holds for the context values `found` of its key.
    fn holds(&self, found: Found, policy_values: &[String]) -> Match {
        let found = match found {
            Found::Values(values) => Some(values),
            Found::Absent => None,
            // `…IfExists` on a missing key holds, and so on a present one it may not: unknown.
            Found::Unknown => return Match::Unknown,
        };
        if self.comparison == Comparison::Null {
            // `Null: {key: "true"}` holds when the key is absent; `"false"` when present.
            return Match::any(policy_values.iter().map(|value| {
                match value.to_ascii_lowercase().as_str() {
                    "true" => Match::from_bool(found.is_none()),
                    "false" => Match::from_bool(found.is_some()),
                    _ => Match::Unknown,
                }
            }));
        }
        let Some(found) = found else {
            return Match::from_bool(
                self.if_exists
                    || match self.qualifier {
                        Some(SetQualifier::AllValues) => true,
                        Some(SetQualifier::AnyValue) => false,
                        None => self.negated,
                    },
            );
        };
        // A context value "matches" when the positive comparison holds for any policy value;
        // a negated operator wants it to match none.
        let value_ok = |value: &String| {
            let hit = Match::any(
                policy_values
                    .iter()
                    .map(|policy| self.compare(value, policy)),
            );
            if self.negated {
                hit.not()
            } else {
                hit
            }
        };
        let all = |found: &[String]| Match::any(found.iter().map(value_ok).map(Match::not)).not();
        match self.qualifier {
            Some(SetQualifier::AllValues) => all(found),
            Some(SetQualifier::AnyValue) => Match::any(found.iter().map(value_ok)),
            // A single-valued operator: positive when any value matches, negated when none
            // does.
            None if self.negated => all(found),
            None => Match::any(found.iter().map(value_ok)),
        }
    }

    /// The positive comparison of one context value with one policy value. A value with
    /// [`UNKNOWN`] parts, or a policy value holding a `${…}` ctfix could not resolve, is
    /// compared ARN component by component: a known component that differs decides `No`
    /// (`trail/trail-t` is not `trail/trail-u`, whatever the account); an unknown one is
    /// `Unknown` unless the policy's is all `*` in a `…Like`.
    fn compare(&self, value: &str, policy: &str) -> Match {
        let unknown_part = |value_part: &str, policy_part: &str| {
            value_part.contains(UNKNOWN) || policy_part.contains("${")
        };
        if !unknown_part(value, policy) {
            return Match::from_bool(self.compare_known(value, policy));
        }
        let like = matches!(
            self.comparison,
            Comparison::StringLike | Comparison::ArnLike
        );
        if like && policy.chars().all(|c| c == '*') {
            return Match::Yes;
        }
        let comparable = matches!(
            self.comparison,
            Comparison::StringEquals
                | Comparison::StringEqualsIgnoreCase
                | Comparison::StringLike
                | Comparison::ArnLike
        );
        let value_parts: Vec<&str> = value.splitn(6, ':').collect();
        let policy_parts: Vec<&str> = policy.splitn(6, ':').collect();
        if !comparable || value_parts.len() != 6 || policy_parts.len() != 6 {
            return Match::Unknown;
        }
        // An ARN with unknown components: each component on its own (a `*` in a `StringLike`
        // component stays inside it for the known ones, which is all this is used for).
        let mut result = Match::Yes;
        for (value_part, policy_part) in value_parts.iter().zip(&policy_parts) {
            let part = if unknown_part(value_part, policy_part) {
                if like && policy_part.chars().all(|c| c == '*') {
                    Match::Yes
                } else {
                    Match::Unknown
                }
            } else {
                let comparison = if self.comparison == Comparison::ArnLike {
                    Operator {
                        comparison: Comparison::StringLike,
                        ..*self
                    }
                } else {
                    *self
                };
                Match::from_bool(comparison.compare_known(value_part, policy_part))
            };
            result = result.and(part);
        }
        result
    }

    fn compare_known(&self, value: &str, policy: &str) -> bool {
        match self.comparison {
            Comparison::StringEquals => value == policy,
            Comparison::StringEqualsIgnoreCase => value.to_lowercase() == policy.to_lowercase(),
            Comparison::StringLike => glob(policy, value, false),
            Comparison::ArnLike => arn_like(policy, value),
            Comparison::Bool => match (parse_bool(value), parse_bool(policy)) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            },
            Comparison::Numeric(op) => {
                match (value.trim().parse::<f64>(), policy.trim().parse::<f64>()) {
                    (Ok(a), Ok(b)) => op.holds(a, b),
                    _ => false,
                }
            }
            Comparison::Null => false,
        }
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// `ArnLike`: each of the six colon-separated components is matched on its own (case
/// sensitive, wildcards allowed). A pattern with fewer components matches only if it is all
/// `*`.
fn arn_like(pattern: &str, arn: &str) -> bool {
    let pattern_parts: Vec<&str> = pattern.splitn(6, ':').collect();
    let arn_parts: Vec<&str> = arn.splitn(6, ':').collect();
    if pattern_parts.len() != 6 {
        return pattern.chars().all(|c| c == '*');
    }
    arn_parts.len() == 6
        && pattern_parts
            .iter()
            .zip(&arn_parts)
            .all(|(p, a)| glob(p, a, false))
}

/// Matches `text` against `pattern`, where `*` is any run of characters and `?` any one.
fn glob(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let fold = |c: char| {
        if ignore_case {
            c.to_lowercase().next().unwrap_or(c)
        } else {
            c
        }
    };
    let pattern: Vec<char> = pattern.chars().map(fold).collect();
    let text: Vec<char> = text.chars().map(fold).collect();
    let (mut p, mut t) = (0, 0);
    // The last `*` seen and the text position it was tried at: backtrack there on mismatch.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_key_with_any_characters_is_read_without_a_panic() {
        let cloudtrail = Principal::Service("cloudtrail.amazonaws.com");
        // Multi-byte characters across the lengths of the keys compared with.
        for key in [
            "aws:PrincipalTag/équipe",
            "aws:Principalé",
            "aws:PrincipalOrgIé",
            "éééééééééééééééé",
        ] {
            let _ = never_carried(&cloudtrail, key);
        }
        assert!(never_carried(&cloudtrail, "aws:PrincipalTag/équipe"));
        assert!(never_carried(&cloudtrail, "AWS:PrincipalOrgID"));
        assert!(!never_carried(&cloudtrail, "aws:PrincipalOrgIDx"));
    }
    use serde_json::json;

    const ACCOUNT: &str = "123456789012";
    const OTHER: &str = "210987654321";
    const TRAIL: &str = "arn:aws:cloudtrail:us-east-1:123456789012:trail/org-trail";

    #[test]
    fn a_resource_names_this_key_when_it_covers_every_key() {
        assert_eq!(names_this_key("*"), Match::Yes);
        assert_eq!(names_this_key("arn:aws:kms:*:*:*"), Match::Yes);
        assert_eq!(
            names_this_key("arn:aws:KMS:us-east-1:123456789012:key/*"),
            Match::Yes
        );
        // One key's ARN may be another key's: the statement is not known to name this one.
        assert_eq!(
            names_this_key(
                "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
            ),
            Match::Unknown
        );
        assert_eq!(
            names_this_key("arn:aws:kms:us-east-1:123456789012:key/1234*"),
            Match::Unknown
        );
        for other in [
            "arn:aws:kms:us-east-1:123456789012:alias/trail",
            "arn:aws:s3:::bucket/key/x",
            "key/1234",
            "arn:aws:kms",
            "urn:aws:kms:us-east-1:123456789012:key/1234",
        ] {
            assert_eq!(names_this_key(other), Match::No, "{other}");
        }
    }

    #[test]
    fn numeric_and_case_blind_negated_conditions() {
        let holds = |operator: &str, policy: serde_json::Value, value: &str| {
            let context = ctx(&[("k", &[value])]);
            let request = Request {
                principal: Principal::Service(CLOUDTRAIL_SERVICE),
                action: "kms:Decrypt",
                context: &context,
            };
            conditions_match(&json!({ operator: { "k": policy } }), &request, false)
        };
        assert_eq!(holds("NumericLessThan", json!("10"), "9"), Match::Yes);
        assert_eq!(holds("NumericLessThan", json!("10"), "10"), Match::No);
        assert_eq!(holds("NumericGreaterThan", json!(10), "11"), Match::Yes);
        assert_eq!(holds("NumericGreaterThan", json!(10), "10"), Match::No);
        assert_eq!(holds("NumericGreaterThan", json!(10), "9"), Match::No);
        assert_eq!(
            holds("StringNotEqualsIgnoreCase", json!("ABC"), "abc"),
            Match::No
        );
        assert_eq!(
            holds("StringNotEqualsIgnoreCase", json!("ABC"), "xyz"),
            Match::Yes
        );
        // No values to compare with: ctfix does not guess.
        assert_eq!(holds("StringEquals", json!([]), "abc"), Match::Unknown);
        assert_eq!(holds("Bool", json!("false"), "false"), Match::Yes);
        assert_eq!(holds("Bool", json!(false), "true"), Match::No);
    }

    #[test]
    fn an_account_id_is_twelve_digits() {
        assert!(is_account_id(ACCOUNT));
        assert!(!is_account_id("12345"));
        assert!(!is_account_id("12345678901a"));
        assert!(!is_account_id("1234567890123"));
    }

    fn ctx(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(k, vs)| (k.to_string(), vs.iter().map(|v| v.to_string()).collect()))
            .collect()
    }

    fn service_decision(
        policy: &Value,
        action: &str,
        context: &BTreeMap<String, Vec<String>>,
    ) -> Decision {
        let request = Request {
            principal: Principal::Service(CLOUDTRAIL_SERVICE),
            action,
            context,
        };
        evaluate(policy, &request, Conditions::Evaluate)
    }

    fn role_decision(policy: &Value, arn: &str, account: &str, action: &str) -> Decision {
        let context = BTreeMap::new();
        let request = Request {
            principal: Principal::Aws { arn, account },
            action,
            context: &context,
        };
        evaluate(policy, &request, Conditions::Evaluate)
    }

    /// A one-statement Allow policy for CloudTrail with the given condition.
    fn conditioned(condition: Value) -> Value {
        json!({"Statement": {"Effect": "Allow", "Principal": {"Service": CLOUDTRAIL_SERVICE},
            "Action": "kms:*", "Resource": "*", "Condition": condition}})
    }

    fn holds(condition: Value, context: &BTreeMap<String, Vec<String>>) -> bool {
        service_decision(&conditioned(condition), "kms:Decrypt", context) == Decision::Allowed
    }

    #[test]
    fn glob_wildcards() {
        assert!(glob("kms:GenerateDataKey*", "kms:GenerateDataKey", false));
        assert!(glob(
            "kms:GenerateDataKey*",
            "kms:GenerateDataKeyWithoutPlaintext",
            false
        ));
        assert!(!glob("kms:GenerateDataKey*", "kms:Decrypt", false));
        assert!(glob("kms:?escribeKey", "kms:DescribeKey", false));
        assert!(!glob("kms:?DescribeKey", "kms:DescribeKey", false));
        assert!(glob("*", "", false));
        assert!(glob("a*b*c", "aXXbYYbc", false));
        assert!(!glob("a*b*c", "aXXbYYb", false));
        assert!(glob("KMS:describe*", "kms:DescribeKey", true));
        assert!(!glob("KMS:describe*", "kms:DescribeKey", false));
        assert!(glob("**x", "abx", false));
        assert!(glob("é?", "éü", false));
    }

    #[test]
    fn arn_like_matches_component_wise() {
        assert!(arn_like("arn:aws:cloudtrail:*:123456789012:trail/*", TRAIL));
        // A `*` does not cross a component boundary.
        assert!(!arn_like("arn:aws:cloudtrail:*:trail/*", TRAIL));
        assert!(!arn_like(
            "arn:aws:cloudtrail:*:210987654321:trail/*",
            TRAIL
        ));
        assert!(arn_like("*", TRAIL));
        assert!(!arn_like(
            "arn:aws:cloudtrail:us-east-1:123456789012:trail/ORG-TRAIL",
            TRAIL
        ));
    }

    #[test]
    fn action_string_array_wildcard_and_case() {
        let policy = json!({"Statement": [{"Effect": "Allow", "Principal": "*",
            "Action": ["kms:Encrypt", "KMS:generatedatakey*"], "Resource": "*"}]});
        let context = BTreeMap::new();
        assert_eq!(
            service_decision(&policy, "kms:GenerateDataKey", &context),
            Decision::Allowed
        );
        assert_eq!(
            service_decision(&policy, "kms:encrypt", &context),
            Decision::Allowed
        );
        assert_eq!(
            service_decision(&policy, "kms:Decrypt", &context),
            Decision::NotAllowed
        );
    }

    #[test]
    fn not_action() {
        let policy = json!({"Statement": {"Effect": "Allow", "Principal": "*",
            "NotAction": ["kms:ScheduleKeyDeletion", "kms:Disable*"], "Resource": "*"}});
        let context = BTreeMap::new();
        assert_eq!(
            service_decision(&policy, "kms:DescribeKey", &context),
            Decision::Allowed
        );
        assert_eq!(
            service_decision(&policy, "kms:DisableKey", &context),
            Decision::NotAllowed
        );
        assert_eq!(
            service_decision(&policy, "kms:ScheduleKeyDeletion", &context),
            Decision::NotAllowed
        );
    }

    #[test]
    fn principal_forms() {
        let role = "arn:aws:iam::123456789012:role/admin";
        let allow = |principal: Value| {
            json!({"Statement": {"Effect": "Allow", "Principal": principal,
                "Action": "kms:*", "Resource": "*"}})
        };
        let root = allow(json!({"AWS": "arn:aws:iam::123456789012:root"}));
        assert_eq!(
            role_decision(&root, role, ACCOUNT, "kms:DescribeKey"),
            Decision::Allowed
        );
        assert_eq!(
            role_decision(
                &root,
                "arn:aws:iam::210987654321:role/admin",
                OTHER,
                "kms:DescribeKey"
            ),
            Decision::NotAllowed
        );
        // The root form's partition must be the principal's.
        assert_eq!(
            role_decision(
                &allow(json!({"AWS": "arn:aws-cn:iam::123456789012:root"})),
                role,
                ACCOUNT,
                "kms:DescribeKey"
            ),
            Decision::NotAllowed
        );
        let account_id = allow(json!({"AWS": [OTHER, ACCOUNT]}));
        assert_eq!(
            role_decision(&account_id, role, ACCOUNT, "kms:DescribeKey"),
            Decision::Allowed
        );
        let exact = allow(json!({"AWS": role}));
        assert_eq!(
            role_decision(&exact, role, ACCOUNT, "kms:Encrypt"),
            Decision::Allowed
        );
        assert_eq!(
            role_decision(
                &exact,
                "arn:aws:iam::123456789012:role/other",
                ACCOUNT,
                "kms:Encrypt"
            ),
            Decision::NotAllowed
        );
        // AWS principals never match a service, and the other way round.
        let context = BTreeMap::new();
        assert_eq!(
            service_decision(&root, "kms:DescribeKey", &context),
            Decision::NotAllowed
        );
        let service = allow(json!({"Service": ["logs.amazonaws.com", "CloudTrail.amazonaws.com"]}));
        assert_eq!(
            service_decision(&service, "kms:DescribeKey", &context),
            Decision::Allowed
        );
        assert_eq!(
            role_decision(&service, role, ACCOUNT, "kms:DescribeKey"),
            Decision::NotAllowed
        );
        // "*" and {"AWS": "*"} are everyone.
        for everyone in [json!("*"), json!({"AWS": "*"})] {
            let policy = allow(everyone);
            assert_eq!(
                service_decision(&policy, "kms:DescribeKey", &context),
                Decision::Allowed
            );
            assert_eq!(
                role_decision(&policy, role, OTHER, "kms:DescribeKey"),
                Decision::Allowed
            );
        }
        // A principal element that is neither "*" nor an object is unreadable: no Allow.
        assert_eq!(
            role_decision(
                &allow(json!("arn:aws:iam::123456789012:root")),
                role,
                ACCOUNT,
                "kms:Encrypt"
            ),
            Decision::NotAllowed
        );
    }

    #[test]
    fn not_principal() {
        let policy = json!({"Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"},
            {"Effect": "Deny", "NotPrincipal": {"AWS": "arn:aws:iam::123456789012:root"},
             "Action": "kms:PutKeyPolicy", "Resource": "*"}
        ]});
        let role = "arn:aws:iam::123456789012:role/admin";
        assert_eq!(
            role_decision(&policy, role, ACCOUNT, "kms:PutKeyPolicy"),
            Decision::Allowed
        );
        assert_eq!(
            role_decision(
                &policy,
                "arn:aws:iam::210987654321:role/x",
                OTHER,
                "kms:PutKeyPolicy"
            ),
            Decision::ExplicitlyDenied
        );
        let context = BTreeMap::new();
        assert_eq!(
            service_decision(&policy, "kms:PutKeyPolicy", &context),
            Decision::ExplicitlyDenied
        );
    }

    #[test]
    fn resource_is_this_key() {
        let context = BTreeMap::new();
        let with_resource = |resource: Value| {
            json!({"Statement": {"Effect": "Allow", "Principal": "*", "Action": "kms:*",
                "Resource": resource}})
        };
        for yes in [
            json!("*"),
            json!(["arn:aws:s3:::bucket", "arn:*:kms:*:*:key/*"]),
            json!("arn:aws:kms:*:*:*"),
        ] {
            let policy = with_resource(yes.clone());
            assert_eq!(
                service_decision(&policy, "kms:Encrypt", &context),
                Decision::Allowed,
                "{yes}"
            );
        }
        for no in [
            json!("arn:aws:s3:::bucket/*"),
            // Perhaps another key: grants nothing known on this one.
            json!("arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
            json!("arn:aws:kms:us-east-1:123456789012:alias/logs"),
            json!("key/abc"),
            json!(42),
        ] {
            let policy = with_resource(no.clone());
            assert_eq!(
                service_decision(&policy, "kms:Encrypt", &context),
                Decision::NotAllowed,
                "{no}"
            );
        }
        let not_resource = json!({"Statement": {"Effect": "Allow", "Principal": "*",
            "Action": "kms:*", "NotResource": "arn:aws:s3:::bucket"}});
        assert_eq!(
            service_decision(&not_resource, "kms:Encrypt", &context),
            Decision::Allowed
        );
        let not_key = json!({"Statement": {"Effect": "Allow", "Principal": "*",
            "Action": "kms:*", "NotResource": "*"}});
        assert_eq!(
            service_decision(&not_key, "kms:Encrypt", &context),
            Decision::NotAllowed
        );
    }

    #[test]
    fn explicit_deny_wins_in_any_order() {
        let allow =
            json!({"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"});
        let deny = json!({"Effect": "Deny", "Principal": {"Service": CLOUDTRAIL_SERVICE},
            "Action": "kms:GenerateDataKey*", "Resource": "*"});
        let context = BTreeMap::new();
        for statements in [json!([allow, deny]), json!([deny, allow])] {
            let policy = json!({"Version": "2012-10-17", "Statement": statements});
            assert_eq!(
                service_decision(&policy, "kms:GenerateDataKey", &context),
                Decision::ExplicitlyDenied
            );
            assert_eq!(
                service_decision(&policy, "kms:DescribeKey", &context),
                Decision::Allowed
            );
        }
    }

    #[test]
    fn malformed_policies_allow_nothing() {
        let context = BTreeMap::new();
        for policy in [
            json!(null),
            json!({}),
            json!({"Statement": "x"}),
            json!("not json"),
            json!({"Statement": {"Effect": "allow", "Principal": "*", "Action": "*", "Resource": "*"}}),
            json!({"Statement": {"Effect": "Allow", "Principal": "*", "Resource": "*"}}),
            json!({"Statement": {"Effect": "Allow", "Principal": "*", "Action": "*",
                "NotAction": "kms:Decrypt", "Resource": "*"}}),
            json!({"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}),
            json!({"Statement": {"Effect": "Allow", "Principal": "*", "Action": "*"}}),
        ] {
            assert_eq!(
                service_decision(&policy, "kms:Decrypt", &context),
                Decision::NotAllowed,
                "{policy}"
            );
        }
    }

    #[test]
    fn policy_as_json_string() {
        let policy = json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*",
            "Resource": "*"}]});
        let text = Value::String(policy.to_string());
        assert_eq!(
            service_decision(&text, "kms:Decrypt", &BTreeMap::new()),
            Decision::Allowed
        );
    }

    #[test]
    fn string_operators() {
        let c = ctx(&[
            ("aws:SourceArn", &[TRAIL]),
            ("aws:SourceAccount", &[ACCOUNT]),
        ]);
        assert!(holds(
            json!({"StringEquals": {"aws:SourceAccount": ACCOUNT}}),
            &c
        ));
        assert!(!holds(
            json!({"StringEquals": {"aws:SourceAccount": OTHER}}),
            &c
        ));
        // Several values of a key are ORed.
        assert!(holds(
            json!({"StringEquals": {"aws:SourceAccount": [OTHER, ACCOUNT]}}),
            &c
        ));
        assert!(holds(
            json!({"StringNotEquals": {"aws:SourceAccount": OTHER}}),
            &c
        ));
        assert!(!holds(
            json!({"StringNotEquals": {"aws:SourceAccount": [OTHER, ACCOUNT]}}),
            &c
        ));
        assert!(!holds(
            json!({"StringEquals": {"aws:SourceArn": TRAIL.to_uppercase()}}),
            &c
        ));
        assert!(holds(
            json!({"StringEqualsIgnoreCase": {"aws:SourceArn": TRAIL.to_uppercase()}}),
            &c
        ));
        assert!(!holds(
            json!({"StringNotEqualsIgnoreCase": {"aws:SourceArn": TRAIL.to_uppercase()}}),
            &c
        ));
        assert!(holds(
            json!({"StringLike": {"aws:SourceArn": "arn:aws:cloudtrail:*:123456789012:trail/*"}}),
            &c
        ));
        assert!(holds(
            json!({"StringLike": {"aws:SourceArn": "*:trail/org-trai?"}}),
            &c
        ));
        assert!(!holds(
            json!({"StringLike": {"aws:SourceArn": "*:trail/other"}}),
            &c
        ));
        assert!(holds(
            json!({"StringNotLike": {"aws:SourceArn": "*:trail/other"}}),
            &c
        ));
        assert!(!holds(
            json!({"StringNotLike": {"aws:SourceArn": ["*:trail/other", "*org*"]}}),
            &c
        ));
        // StringLike is case sensitive; a `*` in StringLike does cross colons.
        assert!(!holds(
            json!({"StringLike": {"aws:SourceArn": "*ORG-TRAIL"}}),
            &c
        ));
        assert!(holds(
            json!({"StringLike": {"aws:SourceArn": "arn:aws:cloudtrail:*:trail/*"}}),
            &c
        ));
    }

    #[test]
    fn arn_operators() {
        let c = ctx(&[("aws:SourceArn", &[TRAIL])]);
        let pattern = "arn:aws:cloudtrail:*:123456789012:trail/*";
        for op in ["ArnLike", "ArnEquals"] {
            assert!(holds(json!({op: {"aws:SourceArn": pattern}}), &c), "{op}");
            assert!(
                !holds(
                    json!({op: {"aws:SourceArn": "arn:aws:cloudtrail:*:trail/*"}}),
                    &c
                ),
                "{op}"
            );
        }
        for op in ["ArnNotLike", "ArnNotEquals"] {
            assert!(!holds(json!({op: {"aws:SourceArn": pattern}}), &c), "{op}");
            assert!(
                holds(
                    json!({op: {"aws:SourceArn": "arn:aws:cloudtrail:*:210987654321:*"}}),
                    &c
                ),
                "{op}"
            );
        }
    }

    #[test]
    fn bool_numeric_and_null() {
        let c = ctx(&[
            ("aws:SecureTransport", &["true"]),
            ("kms:GrantCount", &["3"]),
        ]);
        assert!(holds(json!({"Bool": {"aws:SecureTransport": true}}), &c));
        assert!(holds(json!({"Bool": {"aws:SecureTransport": "TRUE"}}), &c));
        assert!(!holds(
            json!({"Bool": {"aws:SecureTransport": "false"}}),
            &c
        ));
        assert!(!holds(
            json!({"Bool": {"aws:MultiFactorAuthPresent": "true"}}),
            &c
        ));
        assert!(holds(json!({"NumericLessThan": {"kms:GrantCount": 5}}), &c));
        assert!(holds(
            json!({"NumericLessThanEquals": {"kms:GrantCount": "3"}}),
            &c
        ));
        assert!(!holds(
            json!({"NumericGreaterThan": {"kms:GrantCount": "3"}}),
            &c
        ));
        assert!(holds(
            json!({"NumericGreaterThanEquals": {"kms:GrantCount": "3.0"}}),
            &c
        ));
        assert!(holds(
            json!({"NumericEquals": {"kms:GrantCount": [1, 3]}}),
            &c
        ));
        assert!(holds(
            json!({"NumericNotEquals": {"kms:GrantCount": 4}}),
            &c
        ));
        assert!(!holds(
            json!({"NumericEquals": {"kms:GrantCount": "three"}}),
            &c
        ));
        assert!(holds(
            json!({"Null": {"aws:MultiFactorAuthPresent": "true"}}),
            &c
        ));
        assert!(!holds(json!({"Null": {"aws:SecureTransport": "true"}}), &c));
        assert!(holds(json!({"Null": {"aws:SecureTransport": false}}), &c));
    }

    #[test]
    fn missing_keys_and_if_exists() {
        let empty = BTreeMap::new();
        // A positive operator on a missing key is false, a negated one true.
        assert!(!holds(
            json!({"StringEquals": {"aws:SourceAccount": ACCOUNT}}),
            &empty
        ));
        assert!(holds(
            json!({"StringNotEquals": {"aws:SourceAccount": ACCOUNT}}),
            &empty
        ));
        assert!(!holds(
            json!({"StringLike": {"aws:SourceArn": "*"}}),
            &empty
        ));
        assert!(holds(json!({"ArnNotLike": {"aws:SourceArn": "*"}}), &empty));
        // IfExists: true when missing, evaluated when present.
        assert!(holds(
            json!({"StringEqualsIfExists": {"aws:SourceAccount": OTHER}}),
            &empty
        ));
        let c = ctx(&[("aws:SourceAccount", &[ACCOUNT])]);
        assert!(!holds(
            json!({"StringEqualsIfExists": {"aws:SourceAccount": OTHER}}),
            &c
        ));
        assert!(holds(
            json!({"StringEqualsIfExists": {"aws:SourceAccount": ACCOUNT}}),
            &c
        ));
        assert!(!holds(
            json!({"StringNotEqualsIfExists": {"aws:SourceAccount": ACCOUNT}}),
            &c
        ));
        // An empty value list is as good as missing.
        let blank = ctx(&[("aws:SourceAccount", &[])]);
        assert!(!holds(
            json!({"StringEquals": {"aws:SourceAccount": ACCOUNT}}),
            &blank
        ));
    }

    #[test]
    fn condition_keys_ignore_case_and_operators_and_keys_are_anded() {
        let c = ctx(&[
            ("aws:SourceArn", &[TRAIL]),
            ("aws:SourceAccount", &[ACCOUNT]),
        ]);
        assert!(holds(
            json!({"StringEquals": {"AWS:SOURCEACCOUNT": ACCOUNT}}),
            &c
        ));
        assert!(holds(
            json!({"stringequals": {"aws:SourceAccount": ACCOUNT}}),
            &c
        ));
        assert!(holds(
            json!({"StringEquals": {"aws:SourceAccount": ACCOUNT}, "StringLike": {"aws:SourceArn": "*trail/*"}}),
            &c
        ));
        assert!(!holds(
            json!({"StringEquals": {"aws:SourceAccount": ACCOUNT}, "StringLike": {"aws:SourceArn": "*trail/x"}}),
            &c
        ));
        assert!(!holds(
            json!({"StringEquals": {"aws:SourceAccount": ACCOUNT, "aws:SourceArn": "x"}}),
            &c
        ));
    }

    #[test]
    fn set_qualifiers() {
        let c = ctx(&[("aws:TagKeys", &["team", "env"])]);
        assert!(holds(
            json!({"ForAnyValue:StringEquals": {"aws:TagKeys": "env"}}),
            &c
        ));
        assert!(!holds(
            json!({"ForAnyValue:StringEquals": {"aws:TagKeys": "cost"}}),
            &c
        ));
        assert!(!holds(
            json!({"ForAllValues:StringEquals": {"aws:TagKeys": "env"}}),
            &c
        ));
        assert!(holds(
            json!({"ForAllValues:StringEquals": {"aws:TagKeys": ["env", "team", "x"]}}),
            &c
        ));
        assert!(holds(
            json!({"ForAllValues:StringLike": {"aws:TagKeys": ["e*", "t*"]}}),
            &c
        ));
        assert!(holds(
            json!({"ForAnyValue:StringNotEquals": {"aws:TagKeys": "env"}}),
            &c
        ));
        assert!(!holds(
            json!({"ForAllValues:StringNotEquals": {"aws:TagKeys": "env"}}),
            &c
        ));
        // Missing key: ForAllValues holds vacuously, ForAnyValue does not (unless IfExists).
        let empty = BTreeMap::new();
        assert!(holds(
            json!({"ForAllValues:StringEquals": {"aws:TagKeys": "env"}}),
            &empty
        ));
        assert!(!holds(
            json!({"ForAnyValue:StringEquals": {"aws:TagKeys": "env"}}),
            &empty
        ));
        assert!(holds(
            json!({"ForAnyValue:StringEqualsIfExists": {"aws:TagKeys": "env"}}),
            &empty
        ));
        // Without a qualifier a multi-valued key matches when any value does.
        assert!(holds(json!({"StringEquals": {"aws:TagKeys": "env"}}), &c));
        assert!(!holds(
            json!({"StringNotEquals": {"aws:TagKeys": "env"}}),
            &c
        ));
    }

    #[test]
    fn unreadable_conditions_never_allow_and_always_deny() {
        let c = ctx(&[("aws:CurrentTime", &["2030-01-01T00:00:00Z"])]);
        let date = json!({"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}});
        assert!(!holds(date.clone(), &c));
        assert!(!holds(
            json!({"StringEquals": {"aws:SourceAccount": {"nested": 1}}}),
            &c
        ));
        assert!(!holds(
            json!({"NullIfExists": {"aws:SourceAccount": "true"}}),
            &c
        ));
        assert!(!holds(json!(["StringEquals"]), &c));
        let policy = json!({"Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"},
            {"Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*", "Condition": date}
        ]});
        assert_eq!(
            service_decision(&policy, "kms:Decrypt", &c),
            Decision::ExplicitlyDenied
        );
    }

    #[test]
    fn static_mode_assumes_unknown_allow_conditions_and_decides_denies_it_can() {
        let policy = json!({"Statement": [
            {"Effect": "Allow", "Principal": {"Service": CLOUDTRAIL_SERVICE}, "Action": "kms:*",
             "Resource": "*", "Condition": {"StringLike": {"aws:SourceArn": "${unknown}"}}},
            {"Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*",
             "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
            {"Effect": "Deny", "Principal": "*", "Action": "kms:ScheduleKeyDeletion", "Resource": "*"},
            {"Effect": "Deny", "Principal": "*", "Action": "kms:ReEncrypt*", "Resource": "*",
             "Condition": {"StringNotEquals": {"kms:CallerAccount": "111122223333"}}}
        ]});
        let context = ctx(&[("aws:SecureTransport", &["true"])]);
        let request = |action| Request {
            principal: Principal::Service(CLOUDTRAIL_SERVICE),
            action,
            context: &context,
        };
        let assume = Conditions::AssumeAllowConditionsMet;
        assert_eq!(
            evaluate(&policy, &request("kms:GenerateDataKey"), assume),
            Decision::Allowed
        );
        assert_eq!(
            evaluate(&policy, &request("kms:Decrypt"), assume),
            Decision::Allowed
        );
        assert_eq!(
            evaluate(&policy, &request("kms:ScheduleKeyDeletion"), assume),
            Decision::ExplicitlyDenied
        );
        // A key the context does not hold: the Deny may apply.
        assert_eq!(
            evaluate(&policy, &request("kms:ReEncryptFrom"), assume),
            Decision::Undecided
        );
        // Evaluated for real, the Allow's condition fails.
        assert_eq!(
            evaluate(
                &policy,
                &request("kms:GenerateDataKey"),
                Conditions::Evaluate
            ),
            Decision::NotAllowed
        );
    }

    /// A trail ARN as the judge knows it statically: only the name.
    fn static_trail(name: &str) -> String {
        let u = UNKNOWN;
        format!("arn:{u}:cloudtrail:{u}:{u}:trail/{name}")
    }

    fn static_decisions(policy: &Value, name: &str) -> Vec<Decision> {
        cloudtrail_decisions(
            policy,
            &static_trail(name),
            &UNKNOWN.to_string(),
            Conditions::AssumeAllowConditionsMet,
        )
        .into_iter()
        .map(|(_, decision)| decision)
        .collect()
    }

    /// Regression: a conditioned Deny was taken not to apply, so the data-perimeter Deny on
    /// `aws:PrincipalOrgID` (which CloudTrail's requests never carry) left the key verified.
    #[test]
    fn a_conditioned_deny_is_evaluated_in_cloudtrails_request() {
        let with_deny = |deny: Value| {
            json!({"Statement": [
                {"Effect": "Allow", "Principal": {"Service": CLOUDTRAIL_SERVICE},
                 "Action": ["kms:GenerateDataKey*", "kms:DescribeKey"], "Resource": "*"},
                {"Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
                 "Condition": deny}
            ]})
        };
        let denied = vec![Decision::ExplicitlyDenied; 2];
        let allowed = vec![Decision::Allowed; 2];
        let undecided = vec![Decision::Undecided; 2];
        for (condition, expected) in [
            (
                json!({"StringNotEquals": {"aws:PrincipalOrgID": "o-abc123"}}),
                &denied,
            ),
            (
                json!({"StringNotEqualsIfExists": {"aws:PrincipalOrgID": "o-abc123"}}),
                &denied,
            ),
            (
                json!({"StringNotLike": {"aws:PrincipalOrgPaths": "o-abc123/*"}}),
                &denied,
            ),
            (json!({"Null": {"aws:PrincipalTag/team": "true"}}), &denied),
            // AWS's data-perimeter guidance: exempt service principals.
            (
                json!({"StringNotEquals": {"aws:PrincipalOrgID": "o-abc123"},
                       "Bool": {"aws:PrincipalIsAWSService": "false"}}),
                &allowed,
            ),
            (
                json!({"StringNotEqualsIfExists": {"aws:PrincipalOrgID": "o-abc123"},
                    "BoolIfExists": {"aws:PrincipalIsAWSService": "false"}}),
                &allowed,
            ),
            (json!({"Bool": {"aws:SecureTransport": "false"}}), &allowed),
            (
                json!({"StringEquals": {"aws:PrincipalOrgID": "o-abc123"}}),
                &allowed,
            ),
            (
                json!({"StringNotEquals": {"aws:PrincipalServiceName": CLOUDTRAIL_SERVICE}}),
                &allowed,
            ),
            (
                json!({"StringLike": {"aws:SourceArn": "arn:*:cloudtrail:*:*:trail/other"}}),
                &allowed,
            ),
            (
                json!({"StringNotLike": {"aws:SourceArn": "arn:*:cloudtrail:*:*:trail/*"}}),
                &allowed,
            ),
            // Not decidable without the trail's account, or not modelled at all.
            (
                json!({"StringNotEquals": {"aws:SourceAccount": "111122223333"}}),
                &undecided,
            ),
            (
                json!({"StringNotEquals": {"kms:CallerAccount": "111122223333"}}),
                &undecided,
            ),
            (
                json!({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}),
                &undecided,
            ),
            (
                json!({"StringNotEquals": {"aws:SourceArn": "${var.trail_arn}"}}),
                &undecided,
            ),
        ] {
            assert_eq!(
                &static_decisions(&with_deny(condition.clone()), "trail-t"),
                expected,
                "{condition}"
            );
        }
    }

    /// Regression: a grant scoped to another trail by a literal `aws:SourceArn` counted for
    /// any trail.
    #[test]
    fn a_grant_naming_another_trail_does_not_count() {
        let scoped = |key: &str, arn: &str| {
            json!({"Statement": {"Effect": "Allow", "Principal": {"Service": CLOUDTRAIL_SERVICE},
                "Action": "kms:*", "Resource": "*",
                "Condition": {"StringEquals": {key: arn}}}})
        };
        for key in ["aws:SourceArn", "kms:EncryptionContext:aws:cloudtrail:arn"] {
            let policy = scoped(
                key,
                "arn:aws:cloudtrail:us-east-1:111122223333:trail/trail-t",
            );
            assert_eq!(
                static_decisions(&policy, "trail-t"),
                vec![Decision::Allowed; 2]
            );
            assert_eq!(
                static_decisions(&policy, "trail-u"),
                vec![Decision::NotAllowed; 2]
            );
            // A name ctfix cannot read is taken as the one written.
            assert_eq!(
                static_decisions(&policy, &UNKNOWN.to_string()),
                vec![Decision::Allowed; 2]
            );
            let templated = scoped(key, "arn:${data.aws_partition.p.partition}:cloudtrail:us-east-1:${data.aws_caller_identity.c.account_id}:trail/trail-t");
            assert_eq!(
                static_decisions(&templated, "trail-u"),
                vec![Decision::NotAllowed; 2],
                "the name is literal, whatever the account"
            );
            assert_eq!(
                static_decisions(&templated, "trail-t"),
                vec![Decision::Allowed; 2],
                "parts ctfix could not resolve are taken as written"
            );
            let by_variable = scoped(
                key,
                "arn:aws:cloudtrail:us-east-1:111122223333:trail/${var.name}",
            );
            assert_eq!(
                static_decisions(&by_variable, "trail-u"),
                vec![Decision::Allowed; 2]
            );
        }
        let like = json!({"Statement": {"Effect": "Allow",
            "Principal": {"Service": CLOUDTRAIL_SERVICE}, "Action": "kms:*", "Resource": "*",
            "Condition": {"StringLike": {"aws:SourceArn": "arn:aws:cloudtrail:*:111122223333:trail/audit-*"}}}});
        assert_eq!(
            static_decisions(&like, "audit-eu"),
            vec![Decision::Allowed; 2]
        );
        assert_eq!(
            static_decisions(&like, "ops"),
            vec![Decision::NotAllowed; 2]
        );
    }

    #[test]
    fn anyone_can_decrypt_unless_a_condition_scopes_the_wildcard() {
        let open = |condition: Value| {
            json!({"Statement": {"Effect": "Allow", "Principal": "*", "Action": "kms:*",
                "Resource": "*", "Condition": condition}})
        };
        assert!(anyone_can_decrypt(&open(Value::Null)));
        assert!(anyone_can_decrypt(&json!({"Statement": {"Effect": "Allow",
            "Principal": {"AWS": "*"}, "Action": "kms:Decrypt", "Resource": "*"}})));
        assert!(!anyone_can_decrypt(&open(
            json!({"StringEquals": {"kms:CallerAccount": "111122223333"}})
        )));
        assert!(!anyone_can_decrypt(&open(
            json!({"StringEquals": {"kms:CallerAccount": "${data.aws_caller_identity.c.account_id}"}})
        )));
        assert!(!anyone_can_decrypt(&open(
            json!({"StringEquals": {"aws:PrincipalOrgID": "o-abc123"}})
        )));
        assert!(!anyone_can_decrypt(
            &json!({"Statement": {"Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"}})
        ));
        assert!(!anyone_can_decrypt(
            &json!({"Statement": {"Effect": "Allow",
            "Principal": "*", "Action": "kms:GenerateDataKey*", "Resource": "*"}})
        ));
    }

    #[test]
    fn cloudtrail_needs_both_actions() {
        let only_encrypt = json!({"Statement": [{"Effect": "Allow",
            "Principal": {"Service": CLOUDTRAIL_SERVICE}, "Action": "kms:GenerateDataKey*",
            "Resource": "*"}]});
        assert_eq!(
            cloudtrail_can_use_key(&only_encrypt, TRAIL, ACCOUNT, Conditions::Evaluate),
            Err(vec!["kms:DescribeKey"])
        );
        assert_eq!(
            cloudtrail_can_use_key(&json!({}), TRAIL, ACCOUNT, Conditions::Evaluate),
            Err(vec!["kms:GenerateDataKey*", "kms:DescribeKey"])
        );
        assert!(!account_can_administer_key(
            &only_encrypt,
            "aws",
            ACCOUNT,
            Conditions::Evaluate
        ));
    }

    #[test]
    fn root_without_put_key_policy_cannot_administer() {
        let policy = json!({"Statement": [{"Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
            "NotAction": "kms:PutKeyPolicy", "Resource": "*"}]});
        assert!(!account_can_administer_key(
            &policy,
            "aws",
            ACCOUNT,
            Conditions::Evaluate
        ));
    }

    /// Converts the `jsonencode(...)` argument of a rendered key to JSON, substituting the
    /// data-source attributes it reads.
    fn hcl_to_json(expr: &hcl_edit::expr::Expression, vars: &BTreeMap<&str, &str>) -> Value {
        use hcl_edit::expr::{Expression, ObjectKey};
        use hcl_edit::template::Element;
        let lookup = |e: &Expression| {
            let name = e.to_string();
            let name = name.trim();
            vars.get(name)
                .unwrap_or_else(|| panic!("unknown reference {name}"))
                .to_string()
        };
        match expr {
            Expression::Null(_) => Value::Null,
            Expression::Bool(b) => Value::Bool(*b.value()),
            Expression::Number(n) => json!(n.value().as_f64()),
            Expression::String(s) => Value::String(s.value().clone()),
            Expression::Array(items) => {
                Value::Array(items.iter().map(|e| hcl_to_json(e, vars)).collect())
            }
            Expression::Object(object) => Value::Object(
                object
                    .iter()
                    .map(|(key, value)| {
                        let key = match key {
                            ObjectKey::Ident(ident) => ident.as_str().to_owned(),
                            ObjectKey::Expression(e) => match hcl_to_json(e, vars) {
                                Value::String(s) => s,
                                other => panic!("object key {other}"),
                            },
                        };
                        (key, hcl_to_json(value.expr(), vars))
                    })
                    .collect(),
            ),
            Expression::StringTemplate(template) => Value::String(
                template
                    .iter()
                    .map(|element| match element {
                        Element::Literal(literal) => literal.value().clone(),
                        Element::Interpolation(interpolation) => lookup(&interpolation.expr),
                        Element::Directive(_) => panic!("directive in the key template"),
                    })
                    .collect(),
            ),
            Expression::Traversal(_) => Value::String(lookup(expr)),
            other => panic!("unexpected expression in the key policy: {other}"),
        }
    }

    /// The generated key's policy, rendered from the template for the trail `trail_name` and
    /// evaluated as Terraform would with partition `aws` and account 123456789012.
    fn generated_policy(trail_name: &crate::key_template::TrailName) -> Value {
        use crate::key_template::{render_key, KeyParams};
        let text = render_key(&KeyParams {
            key_label: "trail_key",
            trail_address: "aws_cloudtrail.trail",
            trail_name,
            meta_arguments: &[],
            partition_label: "current",
            identity_label: "current",
        });
        let body = hcl_edit::parser::parse_body(&text).expect("the rendered key parses");
        let block = body
            .get_blocks("resource")
            .next()
            .expect("a resource block");
        let policy = block
            .body
            .get_attribute("policy")
            .expect("a policy attribute");
        let hcl_edit::expr::Expression::FuncCall(call) = &policy.value else {
            panic!("policy is not jsonencode(...)");
        };
        assert_eq!(call.name.name.as_str(), "jsonencode");
        let argument = call.args.iter().next().expect("one argument");
        let vars = BTreeMap::from([
            ("data.aws_partition.current.partition", "aws"),
            ("data.aws_caller_identity.current.account_id", ACCOUNT),
        ]);
        hcl_to_json(argument, &vars)
    }

    #[test]
    fn generated_key_policy_lets_its_trail_and_the_account_in() {
        use crate::key_template::TrailName;
        let policy = generated_policy(&TrailName::Quoted("org-trail".into()));
        // Its own trail, in any region.
        for trail in [
            TRAIL,
            "arn:aws:cloudtrail:eu-west-1:123456789012:trail/org-trail",
        ] {
            assert_eq!(
                cloudtrail_can_use_key(&policy, trail, ACCOUNT, Conditions::Evaluate),
                Ok(())
            );
        }
        // A trail of the same name in another account.
        assert_eq!(
            cloudtrail_can_use_key(
                &policy,
                "arn:aws:cloudtrail:us-east-1:210987654321:trail/org-trail",
                OTHER,
                Conditions::Evaluate
            ),
            Err(vec!["kms:GenerateDataKey*", "kms:DescribeKey"])
        );
        // Another trail of the same account.
        assert_eq!(
            cloudtrail_can_use_key(
                &policy,
                "arn:aws:cloudtrail:us-east-1:123456789012:trail/other",
                ACCOUNT,
                Conditions::Evaluate
            ),
            Err(vec!["kms:GenerateDataKey*", "kms:DescribeKey"])
        );
        assert!(account_can_administer_key(
            &policy,
            "aws",
            ACCOUNT,
            Conditions::Evaluate
        ));
        assert!(!account_can_administer_key(
            &policy,
            "aws",
            OTHER,
            Conditions::Evaluate
        ));
        assert!(!account_can_administer_key(
            &policy,
            "aws-cn",
            ACCOUNT,
            Conditions::Evaluate
        ));
        // Static analysis agrees.
        let assume = Conditions::AssumeAllowConditionsMet;
        assert_eq!(
            cloudtrail_can_use_key(&policy, TRAIL, ACCOUNT, assume),
            Ok(())
        );
        assert!(account_can_administer_key(&policy, "aws", ACCOUNT, assume));
    }

    #[test]
    fn generated_key_policy_lets_no_reader_decrypt_by_itself() {
        use crate::key_template::TrailName;
        let policy = generated_policy(&TrailName::Quoted("org-trail".into()));
        let request_as =
            |arn: &str, account: &str, action: &str, f: &dyn Fn(&Request) -> Decision| {
                let context = ctx(&[
                    ("kms:CallerAccount", &[account]),
                    ("kms:EncryptionContext:aws:cloudtrail:arn", &[TRAIL]),
                ]);
                f(&Request {
                    principal: Principal::Aws { arn, account },
                    action,
                    context: &context,
                })
            };
        let alone = |r: &Request| evaluate_key_policy_alone(&policy, r, Conditions::Evaluate);
        let delegated = |r: &Request| evaluate(&policy, r, Conditions::Evaluate);
        let siem = "arn:aws:iam::123456789012:role/siem";
        // No principal of the account may decrypt by the key policy alone ...
        for action in ["kms:Decrypt", "kms:ReEncryptFrom"] {
            assert_eq!(
                request_as(siem, ACCOUNT, action, &alone),
                Decision::NotAllowed,
                "{action}"
            );
        }
        // ... but an IAM policy of the account can grant it (the root statement delegates) ...
        assert_eq!(
            request_as(siem, ACCOUNT, "kms:Decrypt", &delegated),
            Decision::Allowed
        );
        // ... and nothing lets another account in.
        let foreign = "arn:aws:iam::210987654321:role/siem";
        assert_eq!(
            request_as(foreign, OTHER, "kms:Decrypt", &delegated),
            Decision::NotAllowed
        );
        // The account root still administers the key by the key policy alone.
        let root = "arn:aws:iam::123456789012:root";
        for action in ["kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:Decrypt"] {
            assert_eq!(
                request_as(root, ACCOUNT, action, &alone),
                Decision::Allowed,
                "{action}"
            );
        }
    }

    #[test]
    fn key_policy_alone_reads_account_entries_as_the_root() {
        let role = "arn:aws:iam::123456789012:role/reader";
        let root = "arn:aws:iam::123456789012:root";
        let allow = |principal: Value, condition: Value| {
            json!({"Statement": {"Effect": "Allow", "Principal": principal,
                "Action": "kms:Decrypt", "Resource": "*", "Condition": condition}})
        };
        let decide = |policy: &Value, arn: &str, account: &str| {
            let context = ctx(&[("kms:CallerAccount", &[account])]);
            let request = Request {
                principal: Principal::Aws { arn, account },
                action: "kms:Decrypt",
                context: &context,
            };
            (
                evaluate(policy, &request, Conditions::Evaluate),
                evaluate_key_policy_alone(policy, &request, Conditions::Evaluate),
            )
        };
        use Decision::{Allowed, NotAllowed};
        for entry in [json!({"AWS": root}), json!({"AWS": ACCOUNT})] {
            let policy = allow(entry, json!({}));
            assert_eq!(decide(&policy, role, ACCOUNT), (Allowed, NotAllowed));
            assert_eq!(decide(&policy, root, ACCOUNT), (Allowed, Allowed));
        }
        // What ctfix used to generate: every principal of the account, by the policy alone.
        let everyone = allow(
            json!({"AWS": "*"}),
            json!({"StringEquals": {"kms:CallerAccount": ACCOUNT}}),
        );
        assert_eq!(decide(&everyone, role, ACCOUNT), (Allowed, Allowed));
        assert_eq!(
            decide(&everyone, "arn:aws:iam::210987654321:role/reader", OTHER),
            (NotAllowed, NotAllowed)
        );
        // A principal named by its own ARN is granted by the policy alone.
        let named = allow(json!({"AWS": role}), json!({}));
        assert_eq!(decide(&named, role, ACCOUNT), (Allowed, Allowed));
        // Another account's root names none of this account's principals.
        let other_root = allow(json!({"AWS": "arn:aws:iam::210987654321:root"}), json!({}));
        assert_eq!(decide(&other_root, root, ACCOUNT), (NotAllowed, NotAllowed));
    }

    #[test]
    fn generated_key_policy_for_an_unknown_name_allows_every_trail_of_the_account() {
        use crate::key_template::TrailName;
        let policy = generated_policy(&TrailName::Unknown);
        assert_eq!(
            cloudtrail_can_use_key(
                &policy,
                "arn:aws:cloudtrail:us-east-1:123456789012:trail/anything",
                ACCOUNT,
                Conditions::Evaluate
            ),
            Ok(())
        );
        assert!(cloudtrail_can_use_key(
            &policy,
            "arn:aws:cloudtrail:us-east-1:210987654321:trail/anything",
            OTHER,
            Conditions::Evaluate
        )
        .is_err());
    }
}
