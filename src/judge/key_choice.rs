//! Choosing an existing key of the module for a trail that has none, as a reviewer would:
//! a key whose policy already lets CloudTrail use it is wired instead of generating a second
//! one (another monthly cost, another policy to review).
//!
//! A candidate is an `aws_kms_key` of the module on the trail's provider that [`check_key_for`]
//! finds usable for this trail (a grant whose `aws:SourceArn` names another trail does not count) (enabled, symmetric, its policy allows CloudTrail `kms:GenerateDataKey*` and
//! `kms:DescribeKey`), that no other trail already uses, and that serves every instance of
//! the trail: a key without `count` / `for_each`, or one with the trail's own meta-argument
//! (referred to with the same index). Whether the logs bucket's encryption, an alias or an
//! output also uses it does not matter, except to break ties between several candidates.

use hcl_edit::expr::{Expression, TraversalOperator};
use hcl_edit::structure::Block;

use crate::analyze::{trail_name, Trail};
use crate::key_check::{check_key_for, KeyVerdict};
use crate::module::{is_identifier, provider_of, BlockRef, Module};
use crate::resolve::{Resolver, Value};

/// An existing key chosen for a trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChoice {
    /// The key's label.
    pub label: String,
    /// `[count.index]` / `[each.key]` when the key shares the trail's meta-argument; empty
    /// when one key serves every instance.
    pub index: &'static str,
    /// Why this key, for the fix's title.
    pub why: String,
    /// The other candidates, when nothing ties one of them to CloudTrail more than the
    /// chosen one: the choice is then a reviewer's to confirm (an unsafe fix).
    pub others: Vec<String>,
}

/// A key that grants CloudTrail part of what it needs; named in the generated key's note so a
/// reviewer can extend it instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialKey {
    /// The key's label.
    pub label: String,
    /// As in [`KeyChoice::index`].
    pub index: &'static str,
    /// The actions CloudTrail is not allowed (one of `kms:GenerateDataKey*`,
    /// `kms:DescribeKey`).
    pub missing: Vec<&'static str>,
}

/// What the module offers a trail that needs a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// Wire this key.
    Wire(KeyChoice),
    /// No key fits, but these grant CloudTrail part of what it needs.
    Partial(Vec<PartialKey>),
    /// Nothing: generate a key.
    Nothing,
}

/// What ties a candidate to CloudTrail, strongest first.
#[derive(Debug, Default)]
struct Ties {
    /// The trail's logs bucket encrypts with the key (SSE-KMS).
    bucket: Option<String>,
    /// An alias, the description, the label or an output names CloudTrail.
    names: Vec<String>,
}

impl Ties {
    fn score(&self) -> usize {
        2 * usize::from(self.bucket.is_some()) + usize::from(!self.names.is_empty())
    }

    fn strongest(&self) -> Option<String> {
        self.bucket.clone().or_else(|| self.names.first().cloned())
    }
}

/// The key a reviewer would wire to `trail`, or the keys that almost fit.
pub fn offer_key(module: &Module, resolver: &Resolver<'_>, trail: &Trail) -> Offer {
    offer_key_excluding(module, resolver, trail, &[])
}

/// [`offer_key`] without the keys `taken` (chosen for other trails of the same run): once
/// written, another trail points at them, and the next run would not choose them either.
pub fn offer_key_excluding(
    module: &Module,
    resolver: &Resolver<'_>,
    trail: &Trail,
    taken: &[String],
) -> Offer {
    let mut used_by_trails = keys_used_by_other_trails(module, resolver, trail);
    used_by_trails.extend(taken.iter().cloned());
    let name = trail_name(module, resolver, trail);
    let mut candidates: Vec<(String, &'static str)> = Vec::new();
    let mut partial = Vec::new();
    for at in module.find_blocks("resource", Some("aws_kms_key"), None) {
        let block = module.block(at);
        let Some(label) = block.labels.get(1).map(|l| l.as_str().to_owned()) else {
            continue;
        };
        // A label that is no identifier (`"this:"`) cannot be referred to.
        if !is_identifier(&label) || used_by_trails.contains(&label) {
            continue;
        }
        if provider_of(&module.files[at.file].source.text, block) != trail.provider {
            continue;
        }
        let Some(index) = instance_index(module, at, trail) else {
            continue;
        };
        match check_key_for(module, resolver, &label, name.as_deref()) {
            KeyVerdict::Usable(_) => candidates.push((label, index)),
            KeyVerdict::MissingGrant { missing, .. } if missing.len() == 1 => {
                partial.push(PartialKey {
                    label,
                    index,
                    missing,
                });
            }
            _ => {}
        }
    }
    if candidates.is_empty() {
        return if partial.is_empty() {
            Offer::Nothing
        } else {
            Offer::Partial(partial)
        };
    }
    let bucket_keys = logs_bucket_keys(module, resolver, trail);
    let ranked: Vec<(String, &'static str, Ties)> = candidates
        .into_iter()
        .map(|(label, index)| {
            let ties = ties_of(module, resolver, &label, &bucket_keys);
            (label, index, ties)
        })
        .collect();
    let best_score = ranked.iter().map(|(_, _, t)| t.score()).max().unwrap_or(0);
    let best = ranked
        .iter()
        .position(|(_, _, t)| t.score() == best_score)
        .unwrap_or(0);
    let ambiguous = ranked
        .iter()
        .filter(|(_, _, t)| t.score() == best_score)
        .count()
        > 1;
    let (label, index, ties) = &ranked[best];
    let mut why = if ranked.len() == 1 {
        "the module's only key whose policy already lets CloudTrail use it".to_owned()
    } else if ambiguous {
        format!(
            "the first declared of {} keys whose policy already lets CloudTrail use it",
            ranked.len()
        )
    } else {
        format!(
            "of {} keys whose policy already lets CloudTrail use it, the one tied to CloudTrail",
            ranked.len()
        )
    };
    // The strongest tie says enough; the rest would make the title a paragraph.
    if let Some(tie) = ties.strongest() {
        why.push_str("; ");
        why.push_str(&tie);
    }
    let others = if ambiguous {
        ranked
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != best)
            .map(|(_, (label, _, _))| label.clone())
            .collect()
    } else {
        Vec::new()
    };
    Offer::Wire(KeyChoice {
        label: label.clone(),
        index,
        why,
        others,
    })
}

/// How a reference from the trail selects the key's instance: `""` for a key without
/// `count` / `for_each`, the trail's own index for a key with the very same meta-argument,
/// `None` when the key cannot serve every instance of the trail.
fn instance_index(module: &Module, at: BlockRef, trail: &Trail) -> Option<&'static str> {
    let block = module.block(at);
    let meta = |name: &str| {
        block
            .body
            .get_attribute(name)
            .map(|attr| module.text_of(at.file, &attr.value).map(squeeze))
    };
    match (meta("count"), meta("for_each")) {
        (None, None) => Some(""),
        (Some(Some(text)), None) | (None, Some(Some(text))) => {
            let own = trail.meta_argument.as_ref()?;
            let same_kind = block.body.has_attribute(own.name());
            (same_kind && squeeze(own.expression()) == text).then(|| own.instance_index())
        }
        _ => None,
    }
}

/// The text without whitespace, to compare two meta-argument expressions.
fn squeeze(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Labels of the keys other trails of the module already point at: each is that trail's key,
/// and its policy may name only that trail.
fn keys_used_by_other_trails(
    module: &Module,
    resolver: &Resolver<'_>,
    trail: &Trail,
) -> Vec<String> {
    module
        .find_blocks("resource", Some("aws_cloudtrail"), None)
        .filter(|&at| at != trail.at)
        .filter_map(|at| {
            let attr = module.block(at).body.get_attribute("kms_key_id")?;
            match resolver.value_of(&attr.value, at.file) {
                Value::KeyAttribute { label, .. } => Some(label),
                _ => None,
            }
        })
        .collect()
}

/// What ties `aws_kms_key.<label>` to CloudTrail.
fn ties_of(
    module: &Module,
    resolver: &Resolver<'_>,
    label: &str,
    bucket_keys: &[(String, String)],
) -> Ties {
    let mut ties = Ties {
        bucket: bucket_keys
            .iter()
            .find(|(key, _)| key == label)
            .map(|(_, bucket)| format!("the logs bucket {bucket} encrypts with it")),
        names: Vec::new(),
    };
    for at in module.find_blocks("resource", Some("aws_kms_alias"), None) {
        let block = module.block(at);
        let targets_key = block.body.get_attribute("target_key_id").is_some_and(|attr| {
            matches!(resolver.value_of(&attr.value, at.file), Value::KeyAttribute { label: l, .. } if l == label)
        });
        if !targets_key {
            continue;
        }
        let name = string_attribute(resolver, block, at.file, "name")
            .or_else(|| string_attribute(resolver, block, at.file, "name_prefix"));
        if let Some(name) = name.filter(|name| names_cloudtrail(name)) {
            ties.names
                .push(format!("its alias {name} names CloudTrail"));
        }
    }
    if let Some(at) = module
        .find_blocks("resource", Some("aws_kms_key"), Some(label))
        .next()
    {
        let description = string_attribute(resolver, module.block(at), at.file, "description");
        if description.as_deref().is_some_and(names_cloudtrail) {
            ties.names
                .push("its description names CloudTrail".to_owned());
        }
    }
    for at in module.find_blocks("output", None, None) {
        let block = module.block(at);
        let Some(name) = block.labels.first().map(|l| l.as_str()) else {
            continue;
        };
        let refers = block.body.get_attribute("value").is_some_and(|attr| {
            matches!(resolver.value_of(&attr.value, at.file), Value::KeyAttribute { label: l, .. } if l == label)
        });
        if refers && names_cloudtrail(name) {
            ties.names.push(format!("output {name} names CloudTrail"));
        }
    }
    if names_cloudtrail(label) {
        ties.names.push("its label names CloudTrail".to_owned());
    }
    ties
}

/// Whether a name speaks of CloudTrail (`cloudtrail`, `trail`, any case).
fn names_cloudtrail(text: &str) -> bool {
    text.to_ascii_lowercase().contains("trail")
}

/// A top-level attribute's value when it resolves to a string.
fn string_attribute(
    resolver: &Resolver<'_>,
    block: &Block,
    file: usize,
    name: &str,
) -> Option<String> {
    match resolver.value_of(&block.body.get_attribute(name)?.value, file) {
        Value::String(text) => Some(text),
        _ => None,
    }
}

/// `(key label, bucket address)` for every key the trail's logs bucket encrypts with:
/// `kms_master_key_id` of an `aws_s3_bucket_server_side_encryption_configuration` for the
/// bucket, or of the bucket's own `server_side_encryption_configuration` block.
fn logs_bucket_keys(
    module: &Module,
    resolver: &Resolver<'_>,
    trail: &Trail,
) -> Vec<(String, String)> {
    let Some(attr) = module.block(trail.at).body.get_attribute("s3_bucket_name") else {
        return Vec::new();
    };
    let Some(bucket) = bucket_of(module, resolver, &attr.value, trail.at.file) else {
        return Vec::new();
    };
    let address = format!(
        "aws_s3_bucket.{}",
        module
            .block(bucket)
            .labels
            .get(1)
            .map_or("", |l| l.as_str())
    );
    let mut keys = Vec::new();
    let mut collect = |block: &Block, file: usize| {
        for configuration in nested(block, "rule")
            .flat_map(|rule| nested(rule, "apply_server_side_encryption_by_default"))
        {
            if let Some(id) = configuration.body.get_attribute("kms_master_key_id") {
                if let Value::KeyAttribute { label, .. } = resolver.value_of(&id.value, file) {
                    keys.push((label, address.clone()));
                }
            }
        }
    };
    for configuration in nested(module.block(bucket), "server_side_encryption_configuration") {
        collect(configuration, bucket.file);
    }
    for at in module.find_blocks(
        "resource",
        Some("aws_s3_bucket_server_side_encryption_configuration"),
        None,
    ) {
        let block = module.block(at);
        let same_bucket = block
            .body
            .get_attribute("bucket")
            .and_then(|b| bucket_of(module, resolver, &b.value, at.file))
            == Some(bucket);
        if same_bucket {
            collect(block, at.file);
        }
    }
    keys
}

/// The nested blocks of `block` called `name`.
fn nested<'b>(block: &'b Block, name: &'b str) -> impl Iterator<Item = &'b Block> + 'b {
    block.body.get_blocks(name)
}

/// The `aws_s3_bucket` an expression names: `aws_s3_bucket.<b>.id` / `.bucket` (any
/// instance), or a string equal to a bucket's `bucket` name.
fn bucket_of(
    module: &Module,
    resolver: &Resolver<'_>,
    expr: &Expression,
    file: usize,
) -> Option<BlockRef> {
    if let Expression::Traversal(traversal) = expr {
        if let Expression::Variable(root) = &traversal.expr {
            if root.as_str() == "aws_s3_bucket" {
                let label = match traversal.operators.first().map(|op| op.value()) {
                    Some(TraversalOperator::GetAttr(label)) => label.as_str(),
                    _ => return None,
                };
                return module
                    .find_blocks("resource", Some("aws_s3_bucket"), Some(label))
                    .next();
            }
        }
    }
    let Value::String(name) = resolver.value_of(expr, file) else {
        return None;
    };
    module
        .find_blocks("resource", Some("aws_s3_bucket"), None)
        .find(|&at| {
            string_attribute(resolver, module.block(at), at.file, "bucket").as_deref()
                == Some(name.as_str())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::find_trails;
    use crate::parse::SourceFile;

    const POLICY: &str = r#"jsonencode({
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "cloudtrail.amazonaws.com" }
      Action    = ["kms:GenerateDataKey*", "kms:DescribeKey"]
      Resource  = "*"
    }]
  })"#;

    fn offer(text: &str) -> Offer {
        let source = SourceFile::from_bytes("main.tf", text.as_bytes().to_vec()).unwrap();
        let module = Module::from_sources(std::path::Path::new("."), vec![source]);
        let resolver = Resolver::new(&module);
        let trail = find_trails(&module)
            .into_iter()
            .find(|t| t.label == "t")
            .unwrap();
        offer_key(&module, &resolver, &trail)
    }

    fn key(label: &str, extra: &str) -> String {
        format!("resource \"aws_kms_key\" \"{label}\" {{\n  {extra}\n  policy = {POLICY}\n}}\n")
    }

    fn wired(offer: &Offer) -> Option<(&str, &str)> {
        match offer {
            Offer::Wire(choice) => Some((choice.label.as_str(), choice.index)),
            _ => None,
        }
    }

    #[test]
    fn a_key_with_another_count_serves_no_instance() {
        let text = format!(
            "{}resource \"aws_cloudtrail\" \"t\" {{\n  count = 2\n}}\n",
            key("k", "count = 3")
        );
        assert_eq!(offer(&text), Offer::Nothing);
        let text = text.replace("count = 3", "count = 2");
        assert_eq!(wired(&offer(&text)), Some(("k", "[count.index]")));
        let text = text.replace("count = 2\n  policy", "for_each = toset([\"a\"])\n  policy");
        assert_eq!(offer(&text), Offer::Nothing);
    }

    #[test]
    fn a_single_key_serves_every_instance_of_a_for_each_trail() {
        let text = format!(
            "{}resource \"aws_cloudtrail\" \"t\" {{\n  for_each = toset([\"a\", \"b\"])\n}}\n",
            key("k", "")
        );
        assert_eq!(wired(&offer(&text)), Some(("k", "")));
    }

    #[test]
    fn keys_on_another_provider_or_of_another_trail_are_not_offered() {
        let text = format!(
            "{}resource \"aws_cloudtrail\" \"t\" {{}}\n",
            key("k", "provider = aws.audit")
        );
        assert_eq!(offer(&text), Offer::Nothing);
        let text = format!(
            "{}resource \"aws_cloudtrail\" \"t\" {{}}\nresource \"aws_cloudtrail\" \"other\" {{\n  kms_key_id = aws_kms_key.k.arn\n}}\n",
            key("k", "")
        );
        assert_eq!(offer(&text), Offer::Nothing);
    }

    #[test]
    fn an_alias_naming_cloudtrail_breaks_a_tie() {
        let text = format!(
            "{}{}resource \"aws_kms_alias\" \"b\" {{\n  name          = \"alias/org-cloudtrail\"\n  target_key_id = aws_kms_key.b.key_id\n}}\nresource \"aws_cloudtrail\" \"t\" {{}}\n",
            key("a", ""),
            key("b", "")
        );
        let Offer::Wire(choice) = offer(&text) else {
            panic!("no key offered");
        };
        assert_eq!(choice.label, "b");
        assert!(choice.others.is_empty(), "{choice:?}");
        assert!(choice.why.contains("alias/org-cloudtrail"), "{choice:?}");
    }
}
