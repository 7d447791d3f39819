//! Judging an `aws_kms_key` of the module that a trail points at: does it exist, is it
//! enabled, and does its policy — wherever it lives — let CloudTrail use it?
//!
//! Policies are read from an inline `jsonencode(...)`, a JSON heredoc or string, a
//! `data "aws_iam_policy_document"` (with `source_policy_documents` and
//! `override_policy_documents`), `file(...)`, or a separate `aws_kms_key_policy`; a key with
//! none has AWS's default key policy, which does not grant CloudTrail anything.

use hcl_edit::expr::{Expression, ObjectKey};
use hcl_edit::structure::Block;
use serde_json::{json, Map, Value as Json};

use crate::module::{BlockRef, Module};
use crate::policy::{anyone_can_decrypt, cloudtrail_decisions, Conditions, Decision, UNKNOWN};
use crate::resolve::{Resolver, Value, UNKNOWN_PART};

/// Where a key's policy is written, which decides how a fix can extend it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    /// `policy = jsonencode({...})` on the key (or on an `aws_kms_key_policy`): the block.
    Jsonencode(BlockRef),
    /// `policy = data.aws_iam_policy_document.<x>.json`: the data block.
    Document(BlockRef),
    /// A heredoc, string, `file()` or anything else ctfix reads but cannot edit safely.
    Opaque(BlockRef),
    /// No policy at all: AWS's default key policy applies.
    Default,
}

/// What ctfix found about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyVerdict {
    /// No `resource "aws_kms_key"` with that label in the module.
    NotFound,
    /// Declared in a file ctfix cannot read (a `.tf.json`, or one that does not parse).
    Unreadable,
    /// `is_enabled = false`.
    Disabled(BlockRef),
    /// Not a symmetric encryption key (`customer_master_key_spec` or `key_usage` say
    /// otherwise): CloudTrail can only encrypt with `SYMMETRIC_DEFAULT` / `ENCRYPT_DECRYPT`.
    NotSymmetric {
        /// The key.
        key: BlockRef,
        /// The setting that rules it out, as `attribute = "VALUE"`.
        setting: String,
    },
    /// The policy does not allow CloudTrail these actions.
    MissingGrant {
        /// The key.
        key: BlockRef,
        /// The actions not allowed (`kms:GenerateDataKey*`, `kms:DescribeKey`).
        missing: Vec<&'static str>,
        /// Where the policy lives.
        source: PolicySource,
    },
    /// A `Deny` statement keeps CloudTrail from using the key; adding grants cannot help.
    Denied(BlockRef),
    /// The policy cannot be read (built from values ctfix cannot resolve), or a `Deny` may
    /// apply to CloudTrail and ctfix cannot decide whether it does.
    PolicyUnknown(BlockRef, String),
    /// Usable by CloudTrail, but the policy lets any principal of any account decrypt with
    /// it: reading the logs needs no permission of its own.
    OpenToAnyone(BlockRef),
    /// Usable by CloudTrail.
    Usable(BlockRef),
}

/// Judges `aws_kms_key.<label>` for a trail whose name ctfix does not know.
pub fn check_key(module: &Module, resolver: &Resolver<'_>, label: &str) -> KeyVerdict {
    check_key_for(module, resolver, label, None)
}

/// Judges `aws_kms_key.<label>` for the trail named `trail_name` (which may hold unknown
/// parts): a grant whose condition names another trail (`aws:SourceArn`, the encryption
/// context) does not count for this one.
pub fn check_key_for(
    module: &Module,
    resolver: &Resolver<'_>,
    label: &str,
    trail_name: Option<&str>,
) -> KeyVerdict {
    let Some(key) = module
        .find_blocks("resource", Some("aws_kms_key"), Some(label))
        .next()
    else {
        return if module.is_declared("resource", "aws_kms_key", label) {
            KeyVerdict::Unreadable
        } else {
            KeyVerdict::NotFound
        };
    };
    let block = module.block(key);
    if let Some(enabled) = block.body.get_attribute("is_enabled") {
        if resolver.value_of(&enabled.value, key.file) == Value::Bool(false) {
            return KeyVerdict::Disabled(key);
        }
    }
    for (attribute, usable) in [
        ("customer_master_key_spec", "SYMMETRIC_DEFAULT"),
        ("key_usage", "ENCRYPT_DECRYPT"),
    ] {
        let Some(setting) = block.body.get_attribute(attribute) else {
            continue;
        };
        if let Value::String(value) = resolver.value_of(&setting.value, key.file) {
            if value != usable {
                return KeyVerdict::NotSymmetric {
                    key,
                    setting: format!("{attribute} = \"{value}\""),
                };
            }
        }
    }
    let (holder, policy_expr) = match key_policy_resource(module, resolver, label) {
        Some(at) => (
            at,
            module
                .block(at)
                .body
                .get_attribute("policy")
                .map(|a| &a.value),
        ),
        None => (key, block.body.get_attribute("policy").map(|a| &a.value)),
    };
    let Some(policy_expr) = policy_expr else {
        let default = default_key_policy();
        return verdict_for(key, &default, PolicySource::Default, trail_name);
    };
    match read_policy(module, resolver, policy_expr, holder.file, 0) {
        Ok((mut policy, kind)) => {
            this_key_as_star(&mut policy, label);
            let source = match kind {
                Kind::Jsonencode => PolicySource::Jsonencode(holder),
                Kind::Document(at) => PolicySource::Document(at),
                Kind::Opaque => PolicySource::Opaque(holder),
            };
            verdict_for(key, &policy, source, trail_name)
        }
        Err(why) => KeyVerdict::PolicyUnknown(key, why),
    }
}

/// In a key's policy, `"Resource": "*"` means that key; so does a reference to the key's own
/// ARN (`Resource = aws_kms_key.<label>.arn`, common in an `aws_kms_key_policy`), which ctfix
/// cannot evaluate and would otherwise read as some other key.
fn this_key_as_star(policy: &mut Json, label: &str) {
    let own = |text: &str| {
        let Some(inner) = text.strip_prefix("${").and_then(|t| t.strip_suffix('}')) else {
            return false;
        };
        let Some(rest) = inner.trim().strip_prefix(&format!("aws_kms_key.{label}")) else {
            return false;
        };
        // An instance of a counted key names that instance, itself.
        let rest = match rest.strip_prefix('[') {
            Some(indexed) => match indexed.split_once(']') {
                Some((_, after)) => after,
                None => return false,
            },
            None => rest,
        };
        rest == ".arn"
    };
    let Some(statements) = policy.get_mut("Statement") else {
        return;
    };
    let statements: Vec<&mut Json> = match statements {
        Json::Array(items) => items.iter_mut().collect(),
        other => vec![other],
    };
    for statement in statements {
        match statement.get_mut("Resource") {
            Some(Json::String(text)) if own(text) => *text = "*".to_owned(),
            Some(Json::Array(items)) => {
                for item in items {
                    if matches!(item, Json::String(text) if own(text)) {
                        *item = Json::String("*".to_owned());
                    }
                }
            }
            _ => {}
        }
    }
}

fn verdict_for(
    key: BlockRef,
    policy: &Json,
    source: PolicySource,
    trail_name: Option<&str>,
) -> KeyVerdict {
    // Static analysis: the trail's partition, region and account are unknown (and perhaps its
    // name); an Allow whose conditions cannot be decided is taken as written for this trail,
    // a Deny that may apply to CloudTrail leaves the verdict open.
    let unknown = UNKNOWN.to_string();
    let name = trail_name.unwrap_or(&unknown);
    let trail_arn = format!("arn:{unknown}:cloudtrail:{unknown}:{unknown}:trail/{name}");
    let decisions = cloudtrail_decisions(
        policy,
        &trail_arn,
        &unknown,
        Conditions::AssumeAllowConditionsMet,
    );
    if decisions
        .iter()
        .any(|(_, decision)| *decision == Decision::ExplicitlyDenied)
    {
        return KeyVerdict::Denied(key);
    }
    if decisions
        .iter()
        .any(|(_, decision)| *decision == Decision::Undecided)
    {
        return KeyVerdict::PolicyUnknown(
            key,
            "a Deny statement may apply to cloudtrail.amazonaws.com (its condition, or another element, cannot be decided for CloudTrail's request); a human must check it".to_owned(),
        );
    }
    let missing: Vec<&'static str> = decisions
        .iter()
        .filter(|(_, decision)| *decision != Decision::Allowed)
        .map(|(name, _)| *name)
        .collect();
    if !missing.is_empty() {
        return KeyVerdict::MissingGrant {
            key,
            missing,
            source,
        };
    }
    if anyone_can_decrypt(policy) {
        KeyVerdict::OpenToAnyone(key)
    } else {
        KeyVerdict::Usable(key)
    }
}

/// AWS's default key policy: the account may use and administer the key; nobody else.
fn default_key_policy() -> Json {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
            "Action": "kms:*",
            "Resource": "*"
        }]
    })
}

/// An `aws_kms_key_policy` whose `key_id` refers to `aws_kms_key.<label>`.
fn key_policy_resource(module: &Module, resolver: &Resolver<'_>, label: &str) -> Option<BlockRef> {
    module.find_blocks("resource", Some("aws_kms_key_policy"), None).find(|&at| {
        module
            .block(at)
            .body
            .get_attribute("key_id")
            .is_some_and(|attr| matches!(resolver.value_of(&attr.value, at.file), Value::KeyAttribute { label: l, .. } if l == label))
    })
}

enum Kind {
    Jsonencode,
    Document(BlockRef),
    Opaque,
}

/// Reads a policy expression into JSON. Unknown values inside become their source text (or
/// `${…}`), which never matches a principal or action by accident.
fn read_policy(
    module: &Module,
    resolver: &Resolver<'_>,
    expr: &Expression,
    file: usize,
    depth: usize,
) -> Result<(Json, Kind), String> {
    if depth > 8 {
        return Err("the policy is built through too many indirections".into());
    }
    match expr {
        Expression::FuncCall(call) if call.name.name.as_str() == "jsonencode" => {
            let arg = call
                .args
                .iter()
                .next()
                .ok_or("jsonencode() without an argument")?;
            Ok((to_json(module, resolver, arg, file), Kind::Jsonencode))
        }
        Expression::FuncCall(call)
            if matches!(call.name.name.as_str(), "file" | "templatefile") =>
        {
            let arg = call
                .args
                .iter()
                .next()
                .ok_or("file() without an argument")?;
            let path = module_relative_path(module, arg, file)
                .ok_or("a policy file whose path ctfix cannot resolve")?;
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            parse_json_text(&text).map(|json| (json, Kind::Opaque))
        }
        Expression::Traversal(traversal) => {
            // data.aws_iam_policy_document.<x>.json
            if let Some(at) = policy_document_ref(module, expr) {
                return Ok((
                    document_to_json(module, resolver, at, 0),
                    Kind::Document(at),
                ));
            }
            // local.<x> holding the policy expression.
            if let (Expression::Variable(root), Some(name)) = (
                &traversal.expr,
                traversal.operators.first().and_then(|op| match op.value() {
                    hcl_edit::expr::TraversalOperator::GetAttr(ident) => Some(ident.as_str()),
                    _ => None,
                }),
            ) {
                if root.as_str() == "local" && traversal.operators.len() == 1 {
                    if let Some((local_file, local_expr)) = find_local(module, name) {
                        let (json, _) =
                            read_policy(module, resolver, local_expr, local_file, depth + 1)?;
                        return Ok((json, Kind::Opaque));
                    }
                }
            }
            opaque_string(resolver.value_of(expr, file))
        }
        _ => opaque_string(resolver.value_of(expr, file)),
    }
}

fn opaque_string(value: Value) -> Result<(Json, Kind), String> {
    match value {
        Value::String(text) => parse_json_text(&text).map(|json| (json, Kind::Opaque)),
        Value::Partial(text) => parse_json_text(&text.replace(UNKNOWN_PART, "${unknown}"))
            .map(|json| (json, Kind::Opaque)),
        Value::External(what) => Err(format!("the policy comes from {what}, outside the module")),
        Value::Unknown(why) => Err(format!("the policy depends on {why}")),
        other => Err(format!("the policy is not a JSON document ({other:?})")),
    }
}

fn parse_json_text(text: &str) -> Result<Json, String> {
    serde_json::from_str(text.trim()).map_err(|e| format!("the policy is not valid JSON: {e}"))
}

fn find_local<'m>(module: &'m Module, name: &str) -> Option<(usize, &'m Expression)> {
    module.find_blocks("locals", None, None).find_map(|at| {
        module
            .block(at)
            .body
            .get_attribute(name)
            .map(|attr| (at.file, &attr.value))
    })
}

/// `data.aws_iam_policy_document.<x>.json` → the data block.
pub fn policy_document_ref(module: &Module, expr: &Expression) -> Option<BlockRef> {
    let Expression::Traversal(traversal) = expr else {
        return None;
    };
    let Expression::Variable(root) = &traversal.expr else {
        return None;
    };
    if root.as_str() != "data" {
        return None;
    }
    let names: Vec<&str> = traversal
        .operators
        .iter()
        .filter_map(|op| match op.value() {
            hcl_edit::expr::TraversalOperator::GetAttr(ident) => Some(ident.as_str()),
            _ => None,
        })
        .collect();
    if names.len() != 3 || names[0] != "aws_iam_policy_document" || names[2] != "json" {
        return None;
    }
    module
        .find_blocks("data", Some("aws_iam_policy_document"), Some(names[1]))
        .next()
}

/// `"${path.module}/policy.json"` and plain relative strings, resolved against the module.
fn module_relative_path(
    module: &Module,
    expr: &Expression,
    file: usize,
) -> Option<std::path::PathBuf> {
    let text = module.text_of(file, expr)?;
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    let relative = inner
        .strip_prefix("${path.module}/")
        .or_else(|| inner.strip_prefix("./"))
        .unwrap_or(inner);
    if relative.contains("${") {
        return None;
    }
    Some(module.dir.join(relative))
}

/// Converts an HCL expression to JSON for policy evaluation.
fn to_json(module: &Module, resolver: &Resolver<'_>, expr: &Expression, file: usize) -> Json {
    match expr {
        Expression::Null(_) => Json::Null,
        Expression::Bool(b) => Json::Bool(*b.value()),
        Expression::Number(n) => n.value().as_f64().map_or(Json::Null, |f| json!(f)),
        Expression::String(s) => Json::String(s.value().clone()),
        Expression::Parenthesis(p) => to_json(module, resolver, p.inner(), file),
        Expression::Array(array) => Json::Array(
            array
                .iter()
                .map(|e| to_json(module, resolver, e, file))
                .collect(),
        ),
        Expression::Object(object) => {
            let mut map = Map::new();
            for (key, value) in object.iter() {
                let key = match key {
                    ObjectKey::Ident(ident) => ident.as_str().to_owned(),
                    ObjectKey::Expression(Expression::String(s)) => s.value().clone(),
                    ObjectKey::Expression(other) => module
                        .text_of(file, other)
                        .unwrap_or("?")
                        .trim_matches('"')
                        .to_owned(),
                };
                map.insert(key, to_json(module, resolver, value.expr(), file));
            }
            Json::Object(map)
        }
        other => value_to_json(resolver.value_of(other, file)).unwrap_or_else(|| {
            let text = module.text_of(file, other).unwrap_or("unknown");
            Json::String(format!("${{{}}}", text.trim_matches('"')))
        }),
    }
}

fn value_to_json(value: Value) -> Option<Json> {
    Some(match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(b),
        Value::Number(n) => json!(n),
        Value::String(s) => Json::String(s),
        Value::Partial(s) => Json::String(s.replace(UNKNOWN_PART, "${unknown}")),
        Value::List(items) => Json::Array(
            items
                .into_iter()
                .map(value_to_json)
                .collect::<Option<_>>()?,
        ),
        Value::Object(map) => Json::Object(
            map.into_iter()
                .map(|(k, v)| Some((k, value_to_json(v)?)))
                .collect::<Option<_>>()?,
        ),
        _ => return None,
    })
}

/// A `data "aws_iam_policy_document"` as a policy JSON document, with its source documents'
/// statements first and override documents' statements replacing those with the same Sid.
fn document_to_json(module: &Module, resolver: &Resolver<'_>, at: BlockRef, depth: usize) -> Json {
    let block = module.block(at);
    let mut statements: Vec<Json> = Vec::new();
    let documents = |name: &str| -> Vec<BlockRef> {
        let Some(attr) = block.body.get_attribute(name) else {
            return Vec::new();
        };
        let Expression::Array(array) = &attr.value else {
            return Vec::new();
        };
        array
            .iter()
            .filter_map(|e| policy_document_ref(module, e))
            .collect()
    };
    if depth < 8 {
        for source in documents("source_policy_documents") {
            statements.extend(document_statements(document_to_json(
                module,
                resolver,
                source,
                depth + 1,
            )));
        }
    }
    for statement in blocks_named(resolver, block, "statement", at.file) {
        statements.push(statement_to_json(module, resolver, statement, at.file));
    }
    if depth < 8 {
        for over in documents("override_policy_documents") {
            for statement in
                document_statements(document_to_json(module, resolver, over, depth + 1))
            {
                let sid = statement.get("Sid").cloned();
                match statements
                    .iter_mut()
                    .find(|s| sid.is_some() && s.get("Sid") == sid.as_ref())
                {
                    Some(existing) => *existing = statement,
                    None => statements.push(statement),
                }
            }
        }
    }
    json!({ "Version": "2012-10-17", "Statement": statements })
}

fn document_statements(document: Json) -> Vec<Json> {
    match document.get("Statement") {
        Some(Json::Array(items)) => items.clone(),
        _ => Vec::new(),
    }
}

fn statement_to_json(
    module: &Module,
    resolver: &Resolver<'_>,
    statement: &Block,
    file: usize,
) -> Json {
    let mut out = Map::new();
    let attr = |name: &str| {
        statement
            .body
            .get_attribute(name)
            .map(|a| to_json(module, resolver, &a.value, file))
    };
    if let Some(sid) = attr("sid") {
        out.insert("Sid".into(), sid);
    }
    out.insert("Effect".into(), attr("effect").unwrap_or(json!("Allow")));
    for (hcl, key) in [
        ("actions", "Action"),
        ("not_actions", "NotAction"),
        ("resources", "Resource"),
        ("not_resources", "NotResource"),
    ] {
        if let Some(value) = attr(hcl) {
            out.insert(key.into(), value);
        }
    }
    for (hcl, key) in [
        ("principals", "Principal"),
        ("not_principals", "NotPrincipal"),
    ] {
        let mut principals = Map::new();
        for block in blocks_named(resolver, statement, hcl, file) {
            let get = |name: &str| {
                block
                    .body
                    .get_attribute(name)
                    .map(|a| to_json(module, resolver, &a.value, file))
            };
            if let (Some(Json::String(kind)), Some(ids)) = (get("type"), get("identifiers")) {
                let entry = principals
                    .entry(kind)
                    .or_insert_with(|| Json::Array(Vec::new()));
                if let (Json::Array(list), Json::Array(new)) = (entry, ids) {
                    list.extend(new);
                }
            }
        }
        if !principals.is_empty() {
            // `type = "*"` with identifiers ["*"] is the wildcard principal.
            let value = if principals.keys().all(|k| k == "*") {
                json!("*")
            } else {
                Json::Object(principals)
            };
            out.insert(key.into(), value);
        }
    }
    let mut conditions = Map::new();
    for condition in blocks_named(resolver, statement, "condition", file) {
        let get = |name: &str| {
            condition
                .body
                .get_attribute(name)
                .map(|a| to_json(module, resolver, &a.value, file))
        };
        if let (Some(Json::String(test)), Some(Json::String(variable)), Some(values)) =
            (get("test"), get("variable"), get("values"))
        {
            let entry = conditions
                .entry(test)
                .or_insert_with(|| Json::Object(Map::new()));
            if let Json::Object(map) = entry {
                map.insert(variable, values);
            }
        }
    }
    if !conditions.is_empty() {
        out.insert("Condition".into(), Json::Object(conditions));
    }
    Json::Object(out)
}

/// The nested blocks called `name`: the static ones, and the `content` of each
/// `dynamic "<name>"` whose `for_each` is not empty under the module's defaults (an unknown
/// `for_each` counts as not empty; `<name>.value` inside stays unknown).
fn blocks_named<'b>(
    resolver: &Resolver<'_>,
    parent: &'b Block,
    name: &'b str,
    file: usize,
) -> Vec<&'b Block> {
    let mut out: Vec<&Block> = parent.body.get_blocks(name).collect();
    for dynamic in parent.body.get_blocks("dynamic") {
        if dynamic.labels.first().map(|l| l.as_str()) != Some(name) {
            continue;
        }
        let empty = dynamic
            .body
            .get_attribute("for_each")
            .is_some_and(|for_each| match resolver.value_of(&for_each.value, file) {
                Value::List(items) => items.is_empty(),
                Value::Object(map) => map.is_empty(),
                _ => false,
            });
        if !empty {
            out.extend(dynamic.body.get_blocks("content"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::SourceFile;

    fn module(text: &str) -> Module {
        let source = SourceFile::from_bytes("main.tf", text.as_bytes().to_vec()).unwrap();
        Module::from_sources(std::path::Path::new("."), vec![source])
    }

    #[test]
    fn dynamic_statements_count_when_their_for_each_is_not_empty() {
        let text = r#"
variable "on" {
  default = true
}
resource "aws_kms_key" "k" {
  policy = data.aws_iam_policy_document.p.json
}
data "aws_iam_policy_document" "p" {
  dynamic "statement" {
    for_each = (!false && length("") == 0) || var.on ? [1] : []
    content {
      principals {
        type        = "Service"
        identifiers = ["cloudtrail.amazonaws.com"]
      }
      actions   = ["kms:GenerateDataKey*", "kms:DescribeKey"]
      resources = ["*"]
    }
  }
}
"#;
        let m = module(text);
        let resolver = Resolver::new(&m);
        assert!(
            matches!(check_key(&m, &resolver, "k"), KeyVerdict::Usable(_)),
            "{:?}",
            check_key(&m, &resolver, "k")
        );
        let off = text
            .replace("default = true", "default = false")
            .replace("(!false && length(\"\") == 0) || ", "");
        let m = module(&off);
        let resolver = Resolver::new(&m);
        assert!(matches!(
            check_key(&m, &resolver, "k"),
            KeyVerdict::MissingGrant { .. }
        ));
    }
}

#[cfg(test)]
mod lacework_shape {
    use super::*;
    use crate::parse::SourceFile;

    #[test]
    fn root_only_document_with_unknown_account_does_not_grant_cloudtrail() {
        let text = r#"
data "aws_caller_identity" "current" {}
resource "aws_kms_key" "k" {
  policy = data.aws_iam_policy_document.p.json
}
data "aws_iam_policy_document" "p" {
  statement {
    sid = "Enable IAM User Permissions"
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
    actions   = ["kms:*"]
    resources = ["*"]
  }
  statement {
    principals {
      type        = "Service"
      identifiers = ["cloudtrail.amazonaws.com"]
    }
    actions   = ["kms:GenerateDataKey*"]
    resources = ["*"]
  }
}
"#;
        let source = SourceFile::from_bytes("main.tf", text.as_bytes().to_vec()).unwrap();
        let m = Module::from_sources(std::path::Path::new("."), vec![source]);
        let resolver = Resolver::new(&m);
        let at = m
            .find_blocks("data", Some("aws_iam_policy_document"), None)
            .next()
            .unwrap();
        let json = document_to_json(&m, &resolver, at, 0);
        let verdict = check_key(&m, &resolver, "k");
        assert!(
            matches!(verdict, KeyVerdict::MissingGrant { ref missing, .. } if missing == &vec!["kms:DescribeKey"]),
            "{verdict:?}\n{json:#}"
        );
    }
}
