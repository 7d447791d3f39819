//! Trails written in Terraform's JSON syntax (`*.tf.json`). They are checked like native
//! ones — `kms_key_id` strings may hold `${…}` interpolations, resolved in the module — but
//! never rewritten: a JSON file cannot take the generated key without rewriting bytes that
//! have nothing to do with the fix, so the fix is shown, not written.

use std::path::Path;

use serde_json::Value as Json;

use crate::model::{Applicability, FileError, Finding, FixSummary, Status, RULE_ID};
use crate::module::Module;
use crate::resolve::Resolver;

/// One `aws_cloudtrail` in a JSON file: its name and body.
struct JsonTrail {
    name: String,
    body: serde_json::Map<String, Json>,
}

/// Findings for the trails of one `.tf.json` file.
pub fn check_json_file(
    module: &Module,
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<Finding>, FileError> {
    let root: Json = serde_json::from_slice(bytes).map_err(|error| {
        FileError::at(
            path,
            error.line(),
            error.column(),
            format!("cannot parse Terraform JSON: {error}; ctfix leaves this file untouched"),
        )
    })?;
    let text = String::from_utf8_lossy(bytes);
    let resolver = Resolver::new(module);
    let mut findings = Vec::new();
    for trail in json_trails(&root) {
        let (line, column) = locate(&text, &trail.name);
        let (status, reason, message) = judge_json(module, &resolver, trail.body.get("kms_key_id"));
        let fix = (status == Status::Noncompliant).then(|| FixSummary {
            title: "wire a customer-managed key by hand (ctfix does not rewrite .tf.json files)".to_owned(),
            applicability: Applicability::DisplayOnly,
            selected: false,
            applied: false,
            note: Some(format!(
                "set \"kms_key_id\": \"${{aws_kms_key.<name>.arn}}\" on aws_cloudtrail.{} and declare that key with a policy that lets cloudtrail.amazonaws.com use kms:GenerateDataKey* and kms:DescribeKey (see templates/cloudtrail_kms_key.tf)",
                trail.name
            )),
            diff: None,
            files: Vec::new(),
        });
        findings.push(Finding {
            rule: RULE_ID,
            path: path.to_path_buf(),
            line,
            column,
            resource: format!("aws_cloudtrail.{}", trail.name),
            status,
            reason,
            message,
            meta_argument: if trail.body.contains_key("count") {
                Some("count")
            } else if trail.body.contains_key("for_each") {
                Some("for_each")
            } else {
                None
            },
            fix,
            suppression: None,
            via: Vec::new(),
        });
    }
    Ok(findings)
}

/// `resource.aws_cloudtrail.<name>` in either of the forms Terraform accepts (objects, or
/// arrays of objects at any level).
fn json_trails(root: &Json) -> Vec<JsonTrail> {
    let mut out = Vec::new();
    for resources in as_objects(root.get("resource")) {
        for trails in as_objects(resources.get("aws_cloudtrail")) {
            for (name, body) in trails {
                for body in as_objects(Some(body)) {
                    out.push(JsonTrail {
                        name: name.clone(),
                        body: body.clone(),
                    });
                }
            }
        }
    }
    out
}

fn as_objects(value: Option<&Json>) -> Vec<&serde_json::Map<String, Json>> {
    match value {
        Some(Json::Object(map)) => vec![map],
        Some(Json::Array(items)) => items.iter().filter_map(Json::as_object).collect(),
        _ => Vec::new(),
    }
}

/// The JSON syntax's `kms_key_id`: literals, or a string template resolved in the module.
fn judge_json(
    module: &Module,
    resolver: &Resolver<'_>,
    value: Option<&Json>,
) -> (Status, &'static str, String) {
    let text = match value {
        None => return (Status::Noncompliant, "missing", "kms_key_id is not set: logs are encrypted with SSE-S3 only, not a customer-managed key".into()),
        Some(Json::Null) => return (Status::Noncompliant, "null", "kms_key_id is null: logs are not encrypted with a customer-managed key".into()),
        Some(Json::String(text)) => text,
        Some(_) => return (Status::Noncompliant, "not-a-key-arn", "kms_key_id is not a string, so not a key ARN".into()),
    };
    let expr = match hcl_edit::parser::parse_expr(&serde_json::to_string(text).unwrap_or_default())
    {
        Ok(expr) => expr,
        Err(error) => {
            return (
                Status::Unknown,
                "unresolved",
                format!("kms_key_id's template does not parse: {}", error.message()),
            )
        }
    };
    let verdict = crate::analyze::judge_detached(module, resolver, &expr);
    (verdict.status, verdict.reason, verdict.message)
}

/// 1-based line and column of `"<name>"` after the first `"aws_cloudtrail"` in the text.
fn locate(text: &str, name: &str) -> (usize, usize) {
    let start = text.find("\"aws_cloudtrail\"").unwrap_or(0);
    let needle = format!("\"{name}\"");
    let offset = text[start..].find(&needle).map_or(start, |i| start + i);
    crate::parse::line_col(text, offset)
}
