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
//!   entry names the key when it is `*` or a KMS key ARN pattern (`arn:*:kms:*:*:key/*` and
//!   anything narrower).
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
//! allows, and — when conditions are evaluated — is taken to deny if it is a `Deny`.
//!
//! ## Limitations
//! - Policy variables (`${aws:username}`) are compared literally, not substituted.
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
}

/// How conditions are treated.
///
/// `Evaluate` checks them against `request.context` (for concrete policies read back from
/// AWS). `AssumeAllowConditionsMet` is for static analysis of Terraform, where condition values
/// are often unknown: an Allow's conditions are assumed met, a Deny with conditions is assumed
/// not to apply, a Deny without conditions applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conditions {
    /// Evaluate every condition against the request context.
    Evaluate,
    /// Assume an `Allow`'s conditions are met and that a conditioned `Deny` does not apply.
    AssumeAllowConditionsMet,
}

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
    for statement in statements {
        match statement.get("Effect").and_then(Value::as_str) {
            Some("Deny") if applies(statement, request, conditions, accounts, Effect::Deny) => {
                return Decision::ExplicitlyDenied;
            }
            Some("Allow") => {
                allowed =
                    allowed || applies(statement, request, conditions, accounts, Effect::Allow);
            }
            _ => {}
        }
    }
    if allowed {
        Decision::Allowed
    } else {
        Decision::NotAllowed
    }
}

/// Whether `policy` lets CloudTrail use the key for the trail `trail_arn` of `account`: both
/// `kms:GenerateDataKey*` (tested with `kms:GenerateDataKey`) and `kms:DescribeKey` must be
/// allowed to `cloudtrail.amazonaws.com` with the context CloudTrail sends (`aws:SourceArn`,
/// `aws:SourceAccount`, `kms:EncryptionContext:aws:cloudtrail:arn`). `Err` lists the actions
/// that are not allowed.
pub fn cloudtrail_can_use_key(
    policy: &Value,
    trail_arn: &str,
    account: &str,
    conditions: Conditions,
) -> Result<(), Vec<&'static str>> {
    let context: BTreeMap<String, Vec<String>> = [
        ("aws:SourceArn", trail_arn),
        ("aws:SourceAccount", account),
        ("kms:EncryptionContext:aws:cloudtrail:arn", trail_arn),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), vec![value.to_owned()]))
    .collect();
    let missing: Vec<&'static str> = [
        ("kms:GenerateDataKey*", "kms:GenerateDataKey"),
        ("kms:DescribeKey", "kms:DescribeKey"),
    ]
    .into_iter()
    .filter(|(_, action)| {
        let request = Request {
            principal: Principal::Service(CLOUDTRAIL_SERVICE),
            action,
            context: &context,
        };
        evaluate(policy, &request, conditions) != Decision::Allowed
    })
    .map(|(name, _)| name)
    .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing)
    }
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
/// apply and, when conditions are evaluated, always lets a `Deny` apply.
fn applies(
    statement: &Value,
    request: &Request,
    conditions: Conditions,
    accounts: AccountEntries,
    effect: Effect,
) -> bool {
    let condition = statement.get("Condition");
    let has_conditions = match condition {
        None | Some(Value::Null) => false,
        Some(Value::Object(operators)) => !operators.is_empty(),
        Some(_) => true,
    };
    let condition_match = match (conditions, effect, has_conditions) {
        (_, _, false) => Match::Yes,
        (Conditions::AssumeAllowConditionsMet, Effect::Allow, true) => Match::Yes,
        (Conditions::AssumeAllowConditionsMet, Effect::Deny, true) => return false,
        (Conditions::Evaluate, _, true) => {
            condition.map_or(Match::Yes, |c| conditions_match(c, request.context))
        }
    };
    let matched = principal_match(statement, &request.principal, accounts)
        .and(action_match(statement, request.action))
        .and(resource_match(statement))
        .and(condition_match);
    match effect {
        Effect::Allow => matched == Match::Yes,
        Effect::Deny => matched != Match::No,
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
            Some(patterns) => Match::from_bool(patterns.iter().any(|p| names_this_key(p))),
            None => Match::Unknown,
        },
    )
}

/// Whether a `Resource` entry names the key the policy is attached to: `*` or a KMS key ARN
/// pattern (`arn:<partition>:kms:<region>:<account>:key/<id>`, wildcards allowed).
fn names_this_key(pattern: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let parts: Vec<&str> = pattern.splitn(6, ':').collect();
    if parts.len() != 6 || !glob(parts[0], "arn", false) {
        return false;
    }
    let service = parts[2];
    let resource = parts[5];
    glob(service, "kms", true) && (resource.starts_with("key/") || glob(resource, "key/", false))
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

/// The `Condition` element: every operator and every key must hold.
fn conditions_match(condition: &Value, context: &BTreeMap<String, Vec<String>>) -> Match {
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
            let found = lookup(context, key);
            result = result.and(operator.holds(found, &values));
            if result == Match::No {
                return Match::No;
            }
        }
    }
    result
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
    fn holds(&self, found: Option<&[String]>, policy_values: &[String]) -> Match {
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
            let hit = policy_values
                .iter()
                .any(|policy| self.compare(value, policy));
            hit != self.negated
        };
        Match::from_bool(match self.qualifier {
            Some(SetQualifier::AllValues) => found.iter().all(value_ok),
            Some(SetQualifier::AnyValue) => found.iter().any(value_ok),
            // A single-valued operator: positive when any value matches, negated when none
            // does.
            None if self.negated => found.iter().all(value_ok),
            None => found.iter().any(value_ok),
        })
    }

    /// The positive comparison of one context value with one policy value.
    fn compare(&self, value: &str, policy: &str) -> bool {
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
    use serde_json::json;

    const ACCOUNT: &str = "123456789012";
    const OTHER: &str = "210987654321";
    const TRAIL: &str = "arn:aws:cloudtrail:us-east-1:123456789012:trail/org-trail";

    #[test]
    fn a_resource_names_this_key_by_its_arn_or_a_pattern_covering_keys() {
        assert!(names_this_key("*"));
        assert!(names_this_key(
            "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
        ));
        assert!(names_this_key("arn:aws:kms:*:*:*"));
        assert!(names_this_key("arn:aws:KMS:us-east-1:123456789012:key/*"));
        assert!(!names_this_key(
            "arn:aws:kms:us-east-1:123456789012:alias/trail"
        ));
        assert!(!names_this_key("arn:aws:s3:::bucket/key/x"));
        assert!(!names_this_key("key/1234"));
        assert!(!names_this_key("arn:aws:kms"));
        assert!(!names_this_key(
            "urn:aws:kms:us-east-1:123456789012:key/1234"
        ));
    }

    #[test]
    fn numeric_and_case_blind_negated_conditions() {
        let holds = |operator: &str, policy: serde_json::Value, value: &str| {
            conditions_match(
                &json!({ operator: { "k": policy } }),
                &ctx(&[("k", &[value])]),
            )
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
            json!("arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
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
    fn static_mode_assumes_allow_conditions_and_ignores_conditioned_denies() {
        let policy = json!({"Statement": [
            {"Effect": "Allow", "Principal": {"Service": CLOUDTRAIL_SERVICE}, "Action": "kms:*",
             "Resource": "*", "Condition": {"StringLike": {"aws:SourceArn": "${unknown}"}}},
            {"Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*",
             "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
            {"Effect": "Deny", "Principal": "*", "Action": "kms:ScheduleKeyDeletion", "Resource": "*"}
        ]});
        let context = BTreeMap::new();
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
