//! Stage 4: turn a verdict into text edits. Edits are located with hcl-edit's spans and
//! spliced into the original text, so every byte outside them stays as it was.

pub mod key_template;

use std::collections::{BTreeMap, BTreeSet};

use std::path::{Path, PathBuf};

use hcl_edit::expr::{Expression, ObjectKey};
use hcl_edit::structure::{Attribute, Block};
use hcl_edit::Span;
use serde_json::json;

use crate::analyze::{ExtendPolicy, Remedy, Trail};
use crate::key_check::PolicySource;
use crate::key_choice::{KeyChoice, PartialKey};
use crate::key_template::{
    apply_key_options, cloudtrail_sids_for, document_statements, jsonencode_statements,
    render_alias, render_data_source, render_key, AliasParams, KeyOptions, KeyParams, TrailName,
    UseKey, ADMIN_SID, CLOUDTRAIL_SIDS,
};
use crate::model::{Applicability, Edit, FileError, Fix};
use crate::module::{is_identifier, provider_of, BlockRef, Module};

/// In the title of every fix that wires the configuration's central key (`use-key`).
pub const CENTRAL_KEY_MARK: &str = "(the configured central key)";

/// `kms_key_id`: the attribute every fix sets.
const KMS_KEY_ID: &str = "kms_key_id";

/// Plans fixes for the trails of one module, keeping labels unique across all of them.
#[derive(Debug)]
pub struct FixPlanner<'m> {
    module: &'m Module,
    /// `(block type, first label, second label)` declared or already planned.
    used: BTreeSet<(String, String, String)>,
    /// Data sources planned by an earlier fix, by `(data type, provider)`.
    /// A data source planned by an earlier fix is reused only by fixes selected whenever that
    /// one is (applicability at most its owner's), or a run could write the reference without
    /// the declaration.
    planned_data: BTreeMap<DataSourceKey, Vec<(String, Applicability)>>,
    /// Keys whose policy an earlier fix already extends, with that fix's trail.
    extended: BTreeMap<BlockRef, String>,
    /// The generated key's extras, or a central key to wire instead (`.ctfix.toml`).
    key: KeyOptions,
}

/// A data source type and the provider it reads through.
type DataSourceKey = (&'static str, Option<String>);

/// How a generated key is tied to the trail.
enum KeyMode<'a> {
    /// The trail always uses the new key.
    Dedicated,
    /// The same, replacing a value a caller could set (so: unsafe).
    DedicatedUnsafe,
    /// The same, replacing an alias that may name a shared key (so: unsafe, with a note).
    ReplaceAlias(&'a str),
    /// The same, replacing a reference to an undeclared key (so: unsafe, with a note).
    ReplaceUndeclared(&'a str),
    /// The key exists only when this expression (the trail's current `kms_key_id`, known at
    /// plan time) is null or empty; otherwise the trail keeps using the expression.
    Fallback(&'a str),
}

impl<'m> FixPlanner<'m> {
    /// A planner for `module`.
    pub fn new(module: &'m Module) -> Self {
        FixPlanner {
            module,
            used: module.declared.clone(),
            planned_data: BTreeMap::new(),
            extended: BTreeMap::new(),
            key: KeyOptions::default(),
        }
    }

    /// The same planner, generating keys (or wiring a central key) as `options` say.
    pub fn with_key_options(mut self, options: &KeyOptions) -> Self {
        self.key = options.clone();
        self
    }

    /// The fix for a trail, `None` when its remedy is `None`.
    pub fn plan(&mut self, trail: &Trail, remedy: &Remedy) -> Option<Result<Fix, FileError>> {
        if let Some(use_key) = self.key.use_key.clone() {
            if let Some(fix) = self.wire_central_key(trail, remedy, &use_key) {
                return Some(fix);
            }
        }
        let fix = match remedy {
            Remedy::None => return None,
            Remedy::GenerateKey => self.generate_key(trail, KeyMode::Dedicated),
            Remedy::GenerateKeyUnsafe => self.generate_key(trail, KeyMode::DedicatedUnsafe),
            Remedy::ReplaceAlias { alias } => {
                self.generate_key(trail, KeyMode::ReplaceAlias(alias))
            }
            Remedy::ReplaceUndeclaredKey { label } => {
                self.generate_key(trail, KeyMode::ReplaceUndeclared(label))
            }
            Remedy::VariableFallback { expression } => {
                self.generate_key(trail, KeyMode::Fallback(expression))
            }
            Remedy::GenerateKeyNoting { partial } => self
                .generate_key(trail, KeyMode::Dedicated)
                .map(|fix| with_note(fix, partial_keys_note(partial))),
            Remedy::WireKey { choice } => self.wire_key(trail, choice),
            Remedy::UseArn { attribute, extend } => {
                self.use_arn(trail, attribute.clone(), extend.as_ref())
            }
            Remedy::ExtendPolicy(extend) => self.extend_policy(trail, extend),
            Remedy::EnableKey { key } => self.enable_key(*key),
        };
        Some(fix)
    }

    fn trail_error(&self, trail: &Trail, message: String) -> FileError {
        FileError::at(
            &self.module.files[trail.at.file].source.path,
            trail.line,
            trail.column,
            message,
        )
    }

    fn generate_key(&mut self, trail: &Trail, mode: KeyMode<'_>) -> Result<Fix, FileError> {
        let module = self.module;
        let file = &module.files[trail.at.file];
        let text = &file.source.text;
        let path = &file.source.path;
        let newline = file.source.newline();
        let block = module.block(trail.at);

        let key_label = self.claim_label("resource", "aws_kms_key", &key_label_base(&trail.label));
        let fix_applicability = match mode {
            KeyMode::Dedicated => Applicability::Safe,
            KeyMode::DedicatedUnsafe
            | KeyMode::ReplaceAlias(_)
            | KeyMode::ReplaceUndeclared(_)
            | KeyMode::Fallback(_) => Applicability::Unsafe,
        };
        let mut new_blocks = Vec::new();
        let partition = self.data_source(
            "aws_partition",
            trail.provider.as_deref(),
            fix_applicability,
            &mut new_blocks,
        );
        let identity = self.data_source(
            "aws_caller_identity",
            trail.provider.as_deref(),
            fix_applicability,
            &mut new_blocks,
        );

        let mut meta_arguments = Vec::new();
        if let Some(provider) = &trail.provider {
            meta_arguments.push(("provider", provider.clone()));
        }
        let (reference, applicability) = match mode {
            KeyMode::Dedicated
            | KeyMode::DedicatedUnsafe
            | KeyMode::ReplaceAlias(_)
            | KeyMode::ReplaceUndeclared(_) => {
                if let Some(meta) = &trail.meta_argument {
                    meta_arguments.push((meta.name(), meta.expression().to_owned()));
                }
                let index = trail
                    .meta_argument
                    .as_ref()
                    .map_or("", |meta| meta.instance_index());
                let applicability = if matches!(mode, KeyMode::Dedicated) {
                    Applicability::Safe
                } else {
                    Applicability::Unsafe
                };
                (format!("aws_kms_key.{key_label}{index}.arn"), applicability)
            }
            KeyMode::Fallback(expression) => {
                let operand = if is_simple_operand(expression) {
                    expression.to_owned()
                } else {
                    format!("({expression})")
                };
                meta_arguments.push((
                    "count",
                    format!("{operand} == null || {operand} == \"\" ? 1 : 0"),
                ));
                (
                    format!("coalesce({expression}, one(aws_kms_key.{key_label}[*].arn))"),
                    Applicability::Unsafe,
                )
            }
        };
        let mut title = format!("generate aws_kms_key.{key_label}");
        let trail_name = trail_name(text, block);
        let key = render_key(&KeyParams {
            key_label: &key_label,
            trail_address: &trail.address,
            trail_name: &trail_name,
            meta_arguments: &meta_arguments,
            partition_label: &partition,
            identity_label: &identity,
        });
        let key = apply_key_options(&key, &self.key);
        let alias = self.key.alias.clone().map(|pattern| {
            let label = self.claim_label("resource", "aws_kms_alias", &key_label);
            let text = render_alias(&AliasParams {
                label: &label,
                pattern: &pattern,
                trail_name: &trail_name,
                trail_label: &trail.label,
                key_label: &key_label,
                meta_arguments: &meta_arguments,
            });
            (format!("aws_kms_alias.{label}"), text)
        });

        let wire =
            set_attribute(text, block, KMS_KEY_ID, &reference, newline).ok_or_else(|| {
                self.trail_error(
                    trail,
                    format!(
                        "{}: cannot locate the block's braces to set kms_key_id",
                        trail.address
                    ),
                )
            })?;
        let mut blocks = vec![key];
        if let Some((address, text)) = &alias {
            title.push_str(&format!(" and {address}"));
            blocks.push(text.clone());
        }
        blocks.extend(new_blocks.iter().map(|(_, text)| text.clone()));
        let append = append_after_block(text, block, &blocks, newline);

        let mut note = None;
        if let KeyMode::Fallback(expression) = mode {
            title.push_str(&format!(
                " (created only when {expression} is null or empty)"
            ));
            note = Some(format!(
                "the key's count reads {expression}: a caller that passes a key created in the same apply (known only after apply) then gets \"Invalid count argument\"; such callers must pass a key ARN known at plan time"
            ));
        }
        if let KeyMode::ReplaceAlias(alias) = mode {
            note = Some(alias_note(alias));
        }
        if let KeyMode::ReplaceUndeclared(label) = mode {
            note = Some(undeclared_key_note(module, label));
        }
        if is_organization_trail(module, trail) {
            let reader_note = "an organization trail usually delivers to a bucket in a log-archive account: grant that account's log readers kms:Decrypt in the key policy, which grants no reader by itself. If a delegated administrator account creates the trail, the trail belongs to the management account, so the account in the generated aws:SourceArn and encryption-context conditions (read from aws_caller_identity) must be the management account's";
            note = Some(match note {
                Some(first) => format!("{first}; {reader_note}"),
                None => reader_note.to_owned(),
            });
        }
        for (address, _) in &new_blocks {
            title.push_str(&format!(" and {address}"));
        }
        title.push_str(&format!(" and set {KMS_KEY_ID} = {reference}"));
        Ok(Fix {
            title,
            applicability,
            edits: vec![with_path(path, wire), with_path(path, append)],
            note,
        })
    }

    fn wire_key(&mut self, trail: &Trail, choice: &KeyChoice) -> Result<Fix, FileError> {
        let file = &self.module.files[trail.at.file];
        let reference = format!("aws_kms_key.{}{}.arn", choice.label, choice.index);
        let edit = set_attribute(
            &file.source.text,
            self.module.block(trail.at),
            KMS_KEY_ID,
            &reference,
            file.source.newline(),
        )
        .ok_or_else(|| {
            self.trail_error(
                trail,
                format!(
                    "{}: cannot locate the block's braces to set kms_key_id",
                    trail.address
                ),
            )
        })?;
        let (applicability, note) = if choice.others.is_empty() {
            (Applicability::Safe, None)
        } else {
            let others: Vec<String> = choice
                .others
                .iter()
                .map(|label| format!("aws_kms_key.{label}"))
                .collect();
            (
                Applicability::Unsafe,
                Some(format!(
                    "the module has other keys CloudTrail can use, and nothing ties the chosen one to CloudTrail more than them: {}. Point kms_key_id at the one meant for this trail's logs",
                    others.join(", ")
                )),
            )
        };
        Ok(Fix {
            title: format!(
                "set {KMS_KEY_ID} = {reference} (existing key chosen: {})",
                choice.why
            ),
            applicability,
            edits: vec![with_path(&file.source.path, edit)],
            note,
        })
    }

    fn use_arn(
        &mut self,
        trail: &Trail,
        attribute: std::ops::Range<usize>,
        extend: Option<&ExtendPolicy>,
    ) -> Result<Fix, FileError> {
        let path = &self.module.files[trail.at.file].source.path;
        let mut fix = Fix {
            title: "refer to the key's .arn".to_owned(),
            applicability: Applicability::Safe,
            edits: vec![Edit {
                path: path.clone(),
                range: attribute,
                text: "arn".to_owned(),
            }],
            note: None,
        };
        if let Some(extend) = extend {
            let more = self.extend_policy(trail, extend)?;
            fix.title = format!("{} and {}", fix.title, more.title);
            fix.applicability = fix.applicability.min(more.applicability);
            fix.edits.extend(more.edits);
            fix.note = more.note;
        }
        Ok(fix)
    }

    fn enable_key(&mut self, key: BlockRef) -> Result<Fix, FileError> {
        let file = &self.module.files[key.file];
        let block = self.module.block(key);
        let label = block.labels.get(1).map_or("", |l| l.as_str());
        let edits = block
            .body
            .get_attribute("is_enabled")
            .and_then(|attr| attr.value.span())
            .map(|range| {
                vec![Edit {
                    path: file.source.path.clone(),
                    range,
                    text: "true".to_owned(),
                }]
            })
            .unwrap_or_default();
        Ok(Fix {
            title: format!("enable aws_kms_key.{label} (is_enabled = true)"),
            applicability: Applicability::DisplayOnly,
            edits,
            note: Some("a key is usually disabled on purpose (compromise, retirement): enable it only if that reason no longer holds, or point the trail at another key".to_owned()),
        })
    }

    fn extend_policy(&mut self, trail: &Trail, extend: &ExtendPolicy) -> Result<Fix, FileError> {
        let module = self.module;
        let key_block = module.block(extend.key);
        let key_label = key_block
            .labels
            .get(1)
            .map_or("", |l| l.as_str())
            .to_owned();
        if let Some(first) = self.extended.get(&extend.key) {
            return Ok(Fix {
                title: format!(
                    "covered by the change to aws_kms_key.{key_label}'s policy planned for {first}"
                ),
                applicability: Applicability::Unsafe,
                edits: Vec::new(),
                note: None,
            });
        }
        let key_provider = provider_of(&module.files[extend.key.file].source.text, key_block);
        // Only the statements for what is missing; a document's DescribeKey statement names
        // no account, so it needs no data sources.
        let sids = cloudtrail_sids_for(&extend.missing);
        let needs_data_sources = !matches!(extend.source, PolicySource::Document(_))
            || sids.contains(&CLOUDTRAIL_SIDS[0]);
        let mut new_blocks = Vec::new();
        let (partition, identity) = if needs_data_sources {
            (
                self.data_source(
                    "aws_partition",
                    key_provider.as_deref(),
                    Applicability::Unsafe,
                    &mut new_blocks,
                ),
                self.data_source(
                    "aws_caller_identity",
                    key_provider.as_deref(),
                    Applicability::Unsafe,
                    &mut new_blocks,
                ),
            )
        } else {
            (String::new(), String::new())
        };
        let missing = extend.missing.join(" and ");
        let (holder, edits, what) = match &extend.source {
            PolicySource::Jsonencode(holder) => {
                let edit = extend_jsonencode(module, *holder, &sids, &partition, &identity);
                (
                    *holder,
                    edit,
                    "add CloudTrail's statements to the jsonencode policy of",
                )
            }
            PolicySource::Document(document) => {
                let edit = extend_document(module, *document, &sids, &partition, &identity);
                (
                    *document,
                    edit,
                    "add CloudTrail's statements to the policy document of",
                )
            }
            PolicySource::Default => {
                let edit = add_policy(module, extend.key, &partition, &identity);
                (
                    extend.key,
                    edit,
                    "give a policy (account administration plus CloudTrail) to",
                )
            }
            PolicySource::Opaque(holder) => (*holder, None, ""),
        };
        let Some(edit) = edits else {
            // Heredocs, files, templates: show exactly what to add.
            let statements = json_statements(&sids);
            return Ok(Fix {
                title: format!("add CloudTrail's statements to aws_kms_key.{key_label}'s policy by hand"),
                applicability: Applicability::DisplayOnly,
                edits: Vec::new(),
                note: Some(format!(
                    "the policy is written in a form ctfix does not edit (heredoc, file or template); add these statements to it, with your partition and account id, so that CloudTrail is allowed {missing}:\n{statements}"
                )),
            });
        };
        self.extended.insert(extend.key, trail.address.clone());
        let mut all = vec![edit];
        if !new_blocks.is_empty() {
            let file = &module.files[holder.file];
            let texts: Vec<String> = new_blocks.iter().map(|(_, text)| text.clone()).collect();
            let append = append_after_block(
                &file.source.text,
                module.block(holder),
                &texts,
                file.source.newline(),
            );
            all.push(with_path(&file.source.path, append));
        }
        let mut title = format!("{what} aws_kms_key.{key_label} (it lacks {missing})");
        for (address, _) in &new_blocks {
            title.push_str(&format!(" and add {address}"));
        }
        Ok(Fix {
            title,
            applicability: Applicability::Unsafe,
            edits: all,
            note: Some(
                "changing an existing key's policy affects every user of the key: review it"
                    .to_owned(),
            ),
        })
    }

    /// A label for `block_type "first" "<label>"` that nothing in the module uses yet.
    fn claim_label(&mut self, block_type: &str, first: &str, base: &str) -> String {
        let mut candidate = base.to_owned();
        let mut n = 2;
        while self
            .used
            .contains(&(block_type.to_owned(), first.to_owned(), candidate.clone()))
        {
            candidate = format!("{base}_{n}");
            n += 1;
        }
        self.used
            .insert((block_type.to_owned(), first.to_owned(), candidate.clone()));
        candidate
    }

    /// The label of a usable `data "<data_type>"` on `provider`: an existing one, one an
    /// earlier fix added, or a new one pushed onto `new_blocks` as `(address, text)`.
    fn data_source(
        &mut self,
        data_type: &'static str,
        provider: Option<&str>,
        applicability: Applicability,
        new_blocks: &mut Vec<(String, String)>,
    ) -> String {
        if let Some(label) = existing_data_source(self.module, data_type, provider) {
            return label;
        }
        let key = (data_type, provider.map(str::to_owned));
        let reusable = self.planned_data.get(&key).and_then(|planned| {
            planned
                .iter()
                .find(|(_, owner)| *owner >= applicability)
                .map(|(label, _)| label.clone())
        });
        if let Some(label) = reusable {
            return label;
        }
        let base = match provider {
            None => "current".to_owned(),
            Some(provider) => provider
                .rsplit('.')
                .next()
                .filter(|alias| is_identifier(alias))
                .unwrap_or("current")
                .to_owned(),
        };
        let label = self.claim_label("data", data_type, &base);
        new_blocks.push((
            format!("data.{data_type}.{label}"),
            render_data_source(data_type, &label, provider),
        ));
        self.planned_data
            .entry(key)
            .or_default()
            .push((label.clone(), applicability));
        label
    }
}

/// The fix with `note` added after any note it has.
fn with_note(mut fix: Fix, note: String) -> Fix {
    fix.note = Some(match fix.note.take() {
        Some(first) => format!("{note}; {first}"),
        None => note,
    });
    fix
}

/// The note of a generated key when the module has keys that grant CloudTrail part of what
/// it needs: which key, and the statement it lacks.
fn partial_keys_note(partial: &[PartialKey]) -> String {
    let keys: Vec<String> = partial
        .iter()
        .map(|key| {
            let granted: Vec<&str> = ["kms:GenerateDataKey*", "kms:DescribeKey"]
                .into_iter()
                .filter(|action| !key.missing.contains(action))
                .collect();
            let missing = key.missing.join(" and ");
            format!(
                "aws_kms_key.{label} already lets CloudTrail {granted}, but its policy has no statement allowing cloudtrail.amazonaws.com {missing} (like {sids}): to use that key instead of a new one, add the statement and set {KMS_KEY_ID} = aws_kms_key.{label}{index}.arn",
                label = key.label,
                granted = granted.join(" and "),
                sids = cloudtrail_sids_for(&key.missing).join(" and "),
                index = key.index,
            )
        })
        .collect();
    keys.join("; ")
}

/// What [`FixPlanner::generate_key_for_call`] needs: a `module` block of the planner's module
/// whose instances hold a trail, and the argument that reaches the trail's `kms_key_id`.
#[derive(Debug, Clone)]
pub struct CallSiteKey<'a> {
    /// The `module` block.
    pub call: BlockRef,
    /// Its label.
    pub call_name: &'a str,
    /// The argument to set (a variable of the called module).
    pub input: &'a str,
    /// The trail's name as the caller's arguments make it.
    pub trail_name: TrailName,
    /// The trail's instance address, for the key's description when the name is unknown.
    pub trail_address: &'a str,
    /// Safe, or unsafe when the argument replaces a value a human set.
    pub applicability: Applicability,
    /// The calling module's provider configuration the trail runs on (`aws.eu`), `None` for
    /// the default one: the key and its data sources go on it.
    pub provider: Option<String>,
}

impl FixPlanner<'_> {
    /// Generates a key in the calling module, next to the `module` block, on the trail's
    /// provider as the block passes it, with the block's `count` and `for_each`, and sets the
    /// block's argument to the key's ARN. The called module's files are not touched.
    pub fn generate_key_for_call(&mut self, call: &CallSiteKey<'_>) -> Result<Fix, FileError> {
        let module = self.module;
        let file = &module.files[call.call.file];
        let text = &file.source.text;
        let path = &file.source.path;
        let newline = file.source.newline();
        let block = module.block(call.call);
        let cannot_wire = || {
            let start = block.ident.span().map_or(0, |r| r.start);
            let (line, column) = file.source.line_col(start);
            FileError::at(
                path,
                line,
                column,
                format!(
                    "module.{}: cannot locate the block's braces to set {}",
                    call.call_name, call.input
                ),
            )
        };
        if let Some(use_key) = self.key.use_key.clone() {
            // The organisation's central key, passed to the call as to a trail.
            let value = use_key.value();
            let declared = self.declare_central_key(call.call.file, block, &use_key);
            let wire =
                set_attribute(text, block, call.input, &value, newline).ok_or_else(cannot_wire)?;
            let mut edits = vec![with_path(path, wire)];
            edits.extend(declared.edits);
            return Ok(Fix {
                title: format!(
                    "pass {} = {value} {CENTRAL_KEY_MARK} to module.{}{}",
                    call.input, call.call_name, declared.title
                ),
                applicability: declared
                    .cap
                    .map_or(call.applicability, |cap| call.applicability.min(cap)),
                edits,
                note: declared.note,
            });
        }
        let provider = call.provider.clone();
        let key_label =
            self.claim_label("resource", "aws_kms_key", &key_label_base(call.call_name));
        let mut new_blocks = Vec::new();
        let partition = self.data_source(
            "aws_partition",
            provider.as_deref(),
            call.applicability,
            &mut new_blocks,
        );
        let identity = self.data_source(
            "aws_caller_identity",
            provider.as_deref(),
            call.applicability,
            &mut new_blocks,
        );
        let mut meta_arguments = Vec::new();
        if let Some(provider) = &provider {
            meta_arguments.push(("provider", provider.clone()));
        }
        let mut index = "";
        for (name, instance_index) in [("count", "[count.index]"), ("for_each", "[each.key]")] {
            if let Some(value) = block
                .body
                .get_attribute(name)
                .and_then(|attr| module.text_of(call.call.file, &attr.value))
            {
                meta_arguments.push((name, value.to_owned()));
                index = instance_index;
            }
        }
        let reference = format!("aws_kms_key.{key_label}{index}.arn");
        let key = render_key(&KeyParams {
            key_label: &key_label,
            trail_address: call.trail_address,
            trail_name: &call.trail_name,
            meta_arguments: &meta_arguments,
            partition_label: &partition,
            identity_label: &identity,
        });
        // The organisation's settings for generated keys, as for a key next to a trail.
        let key = apply_key_options(&key, &self.key);
        let alias = self.key.alias.clone().map(|pattern| {
            let label = self.claim_label("resource", "aws_kms_alias", &key_label);
            let text = render_alias(&AliasParams {
                label: &label,
                pattern: &pattern,
                trail_name: &call.trail_name,
                trail_label: call.call_name,
                key_label: &key_label,
                meta_arguments: &meta_arguments,
            });
            (format!("aws_kms_alias.{label}"), text)
        });
        let wire =
            set_attribute(text, block, call.input, &reference, newline).ok_or_else(cannot_wire)?;
        let mut blocks = vec![key];
        let mut title = format!("generate aws_kms_key.{key_label}");
        if let Some((address, text)) = &alias {
            title.push_str(&format!(" and {address}"));
            blocks.push(text.clone());
        }
        blocks.extend(new_blocks.iter().map(|(_, text)| text.clone()));
        let append = append_after_block(text, block, &blocks, newline);
        for (address, _) in &new_blocks {
            title.push_str(&format!(" and {address}"));
        }
        title.push_str(&format!(
            " in the calling module and pass {} = {reference} to module.{}",
            call.input, call.call_name
        ));
        Ok(Fix {
            title,
            applicability: call.applicability,
            edits: vec![with_path(path, wire), with_path(path, append)],
            note: None,
        })
    }
}

/// The provider configuration of the calling module that a `module` block passes to the
/// called module as `inner` (`aws`, or an alias such as `aws.audit` the called module declares
/// in `configuration_aliases`): the entry of `providers = { … }`, normalised as
/// [`provider_of`] does; else `inner` itself when it is the default configuration, which
/// Terraform passes implicitly. `None` for an alias the block does not pass.
pub fn passed_provider(source: &str, block: &Block, inner: &str) -> Option<String> {
    let passed = block
        .body
        .get_attribute("providers")
        .and_then(|attr| match &attr.value {
            Expression::Object(object) => Some(object),
            _ => None,
        })
        .and_then(|object| {
            object.iter().find_map(|(key, value)| {
                let name: String = match key {
                    ObjectKey::Ident(ident) => ident.as_str().to_owned(),
                    ObjectKey::Expression(expr) => source.get(expr.span()?)?.to_owned(),
                }
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
                if name != inner {
                    return None;
                }
                let text = source.get(value.expr().span()?)?;
                Some(
                    text.chars()
                        .filter(|c| !c.is_whitespace() && *c != '"')
                        .collect::<String>(),
                )
            })
        });
    passed.or_else(|| (!inner.contains('.')).then(|| inner.to_owned()))
}

/// Wiring an organisation's central key (`use-key`) instead of generating one.
impl FixPlanner<'_> {
    /// The fix that points the trail at the central key, for the remedies that would
    /// generate a key; `None` for the others (they fix a key the module already has).
    fn wire_central_key(
        &mut self,
        trail: &Trail,
        remedy: &Remedy,
        use_key: &UseKey,
    ) -> Option<Result<Fix, FileError>> {
        let central = use_key.value();
        let (value, mut applicability, mut note) = match remedy {
            Remedy::GenerateKey => (central.clone(), Applicability::Safe, None),
            Remedy::GenerateKeyUnsafe => (central.clone(), Applicability::Unsafe, None),
            Remedy::ReplaceAlias { alias } => (
                central.clone(),
                Applicability::Unsafe,
                Some(alias_note(alias)),
            ),
            // Keep the caller's choice; the central key when there is none.
            Remedy::VariableFallback { expression } => (
                format!("coalesce({expression}, {central})"),
                Applicability::Unsafe,
                None,
            ),
            _ => return None,
        };
        let module = self.module;
        let file = &module.files[trail.at.file];
        let block = module.block(trail.at);
        let mut title = format!("set {KMS_KEY_ID} = {value} {CENTRAL_KEY_MARK}");
        let declared = self.declare_central_key(trail.at.file, block, use_key);
        let mut edits = declared.edits;
        title.push_str(&declared.title);
        if let Some(cap) = declared.cap {
            applicability = applicability.min(cap);
        }
        note = declared.note.or(note);
        let wire = set_attribute(
            &file.source.text,
            block,
            KMS_KEY_ID,
            &value,
            file.source.newline(),
        );
        let Some(wire) = wire else {
            return Some(Err(self.trail_error(
                trail,
                format!(
                    "{}: cannot locate the block's braces to set kms_key_id",
                    trail.address
                ),
            )));
        };
        edits.insert(0, with_path(&file.source.path, wire));
        Some(Ok(Fix {
            title,
            applicability,
            edits,
            note,
        }))
    }
}

/// What wiring the central key needs besides the wire itself.
#[derive(Default)]
struct CentralKeyDeclarations {
    /// The variable the expression names, declared.
    edits: Vec<Edit>,
    /// What the title adds (" and declare variable …").
    title: String,
    /// The most the fix may be.
    cap: Option<Applicability>,
    /// Why.
    note: Option<String>,
}

impl FixPlanner<'_> {
    /// Declares what a `use-key` expression names that the module holding `block` lacks: a
    /// variable (every caller must then pass it: unsafe), or nothing it can declare (the fix
    /// is only shown). A literal ARN needs nothing.
    fn declare_central_key(
        &mut self,
        file: usize,
        block: &Block,
        use_key: &UseKey,
    ) -> CentralKeyDeclarations {
        let mut declared = CentralKeyDeclarations::default();
        let UseKey::Expression(expression) = use_key else {
            return declared;
        };
        let source = &self.module.files[file].source;
        match undeclared_root(self.module, expression) {
            Undeclared::None => {}
            Undeclared::Variable(name) => {
                if self
                    .used
                    .insert(("variable".to_owned(), name.clone(), String::new()))
                {
                    let variable = format!(
                        "variable \"{name}\" {{\n  description = \"ARN of the KMS key that encrypts CloudTrail logs (the organisation's central key)\"\n  type        = string\n}}"
                    );
                    let append =
                        append_after_block(&source.text, block, &[variable], source.newline());
                    declared.edits.push(with_path(&source.path, append));
                    declared.title = format!(" and declare variable {name}");
                }
                declared.cap = Some(Applicability::Unsafe);
                declared.note = Some(format!("declares variable {name} without a default: every caller of this module must now pass the key's ARN"));
            }
            Undeclared::Other(what) => {
                declared.cap = Some(Applicability::DisplayOnly);
                declared.note = Some(format!("the configured use-key names {what}, which this module does not declare: declare it (or change use-key in .ctfix.toml), then run ctfix again"));
            }
        }
        declared
    }
}

/// What a `use-key` expression refers to that the module does not declare.
enum Undeclared {
    /// Everything it names is declared (or needs no declaration).
    None,
    /// `var.<name>` names no variable of the module.
    Variable(String),
    /// A data source, resource, local or module call the module lacks.
    Other(String),
}

/// Checks the first reference of a `use-key` expression against the module's declarations.
fn undeclared_root(module: &Module, expression: &str) -> Undeclared {
    let parts: Vec<&str> = expression.split(['.', '[']).map(|p| p.trim()).collect();
    match parts.as_slice() {
        ["var", name, ..] => {
            if module
                .find_blocks("variable", Some(name), None)
                .next()
                .is_some()
            {
                Undeclared::None
            } else {
                Undeclared::Variable((*name).to_owned())
            }
        }
        ["local", name, ..] => {
            let declared = module
                .find_blocks("locals", None, None)
                .any(|at| module.block(at).body.get_attribute(name).is_some());
            if declared {
                Undeclared::None
            } else {
                Undeclared::Other(format!("local.{name}"))
            }
        }
        ["module", name, ..] => {
            if module
                .find_blocks("module", Some(name), None)
                .next()
                .is_some()
            {
                Undeclared::None
            } else {
                Undeclared::Other(format!("module.{name}"))
            }
        }
        ["data", kind, name, ..] => {
            if module.is_declared("data", kind, name) {
                Undeclared::None
            } else {
                Undeclared::Other(format!("data.{kind}.{name}"))
            }
        }
        [kind, name, ..] => {
            if module.is_declared("resource", kind, name) {
                Undeclared::None
            } else {
                Undeclared::Other(format!("{kind}.{name}"))
            }
        }
        _ => Undeclared::Other(expression.to_owned()),
    }
}

/// Whether an expression can stand before `==` without parentheses.
fn is_simple_operand(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '[' | ']' | '"'))
}

fn with_path(path: &Path, edit: Edit) -> Edit {
    Edit {
        path: path.to_path_buf(),
        ..edit
    }
}

/// The CloudTrail statements with these Sids as plain JSON, for policies ctfix shows rather
/// than edits.
fn json_statements(sids: &[&str]) -> String {
    let statements = json!([
        {
            "Sid": "AllowCloudTrailToEncryptLogs",
            "Effect": "Allow",
            "Principal": { "Service": "cloudtrail.amazonaws.com" },
            "Action": "kms:GenerateDataKey*",
            "Resource": "*",
            "Condition": { "StringLike": { "kms:EncryptionContext:aws:cloudtrail:arn": "arn:<partition>:cloudtrail:*:<account-id>:trail/*" } }
        },
        {
            "Sid": "AllowCloudTrailToDescribeKey",
            "Effect": "Allow",
            "Principal": { "Service": "cloudtrail.amazonaws.com" },
            "Action": "kms:DescribeKey",
            "Resource": "*"
        }
    ]);
    let wanted: Vec<&serde_json::Value> = statements
        .as_array()
        .into_iter()
        .flatten()
        .filter(|statement| sids.iter().any(|sid| statement["Sid"] == *sid))
        .collect();
    serde_json::to_string_pretty(&wanted).unwrap_or_default()
}

/// Adds the CloudTrail statements with these Sids to the `Statement` list of
/// `policy = jsonencode({...})` on the block at `holder`.
fn extend_jsonencode(
    module: &Module,
    holder: BlockRef,
    sids: &[&str],
    partition: &str,
    identity: &str,
) -> Option<Edit> {
    let file = &module.files[holder.file];
    let text = &file.source.text;
    let newline = file.source.newline();
    let policy = module.block(holder).body.get_attribute("policy")?;
    let Expression::FuncCall(call) = &policy.value else {
        return None;
    };
    let Some(Expression::Object(object)) = call.args.iter().next() else {
        return None;
    };
    let statements = object.iter().find_map(|(key, value)| {
        let name = match key {
            ObjectKey::Ident(ident) => ident.as_str().to_owned(),
            ObjectKey::Expression(Expression::String(s)) => s.value().clone(),
            ObjectKey::Expression(_) => return None,
        };
        (name == "Statement").then_some(value.expr())
    })?;
    let Expression::Array(array) = statements else {
        return None;
    };
    let last = array.iter().last()?;
    let last_span = last.span()?;
    let array_span = array.span()?;
    let indent = line_indent(text, last_span.start);
    let rendered: Vec<String> = jsonencode_statements(sids, partition, identity)
        .iter()
        .map(|statement| indent_lines(statement, &indent, newline))
        .collect();
    let close = array_span.end - 1;
    let between = &text[last_span.end..close];
    if let Some(comma) = between.find(',') {
        let at = line_end(text, last_span.end + comma + 1);
        let mut new = String::new();
        for statement in &rendered {
            new.push_str(newline);
            new.push_str(statement);
            new.push(',');
        }
        Some(Edit {
            path: file.source.path.clone(),
            range: at..at,
            text: new,
        })
    } else {
        let mut new = String::new();
        for statement in &rendered {
            new.push(',');
            new.push_str(newline);
            new.push_str(statement);
        }
        Some(Edit {
            path: file.source.path.clone(),
            range: last_span.end..last_span.end,
            text: new,
        })
    }
}

/// Adds the CloudTrail `statement` blocks with these Sids at the end of a policy document.
fn extend_document(
    module: &Module,
    document: BlockRef,
    sids: &[&str],
    partition: &str,
    identity: &str,
) -> Option<Edit> {
    let file = &module.files[document.file];
    let text = &file.source.text;
    let newline = file.source.newline();
    let block = module.block(document);
    let span = block.span()?;
    let close = span.end - 1;
    let close_line_start = text[..close].rfind('\n').map_or(0, |i| i + 1);
    if !text[close_line_start..close].trim().is_empty() {
        return None; // `}` shares its line with other text: leave it to a human.
    }
    let indent = format!("{}  ", line_indent(text, span.start));
    let mut new = String::new();
    for statement in document_statements(sids, partition, identity) {
        new.push_str(newline);
        new.push_str(&indent_lines(&statement, &indent, newline));
        new.push_str(newline);
    }
    Some(Edit {
        path: file.source.path.clone(),
        range: close_line_start..close_line_start,
        text: new,
    })
}

/// Gives a key without a policy one: account administration plus the CloudTrail statements.
fn add_policy(module: &Module, key: BlockRef, partition: &str, identity: &str) -> Option<Edit> {
    let file = &module.files[key.file];
    let newline = file.source.newline();
    let statements = jsonencode_statements(
        &[ADMIN_SID, CLOUDTRAIL_SIDS[0], CLOUDTRAIL_SIDS[1]],
        partition,
        identity,
    );
    let mut value = String::from("jsonencode({\n  Version = \"2012-10-17\"\n  Statement = [\n");
    for statement in &statements {
        value.push_str(&indent_lines(statement, "    ", "\n"));
        value.push_str(",\n");
    }
    value.push_str("  ]\n})");
    let edit = set_attribute(
        &file.source.text,
        module.block(key),
        "policy",
        &value,
        newline,
    )?;
    Some(with_path(&file.source.path, edit))
}

/// Prefixes every non-empty line with `indent` and joins with `newline`.
fn indent_lines(text: &str, indent: &str, newline: &str) -> String {
    text.lines()
        .map(|line| {
            if line.is_empty() {
                String::new()
            } else {
                format!("{indent}{line}")
            }
        })
        .collect::<Vec<_>>()
        .join(newline)
}

/// What to check before taking the fix for a trail whose `kms_key_id` names an undeclared
/// `aws_kms_key.<label>`: the declared label it is probably a typo of, or that the key may
/// live in a file ctfix did not read.
fn undeclared_key_note(module: &Module, label: &str) -> String {
    let declared: Vec<&str> = module
        .declared
        .iter()
        .filter(|(kind, resource, _)| kind == "resource" && resource == "aws_kms_key")
        .map(|(_, _, name)| name.as_str())
        .collect();
    // rustc's threshold for "did you mean": a third of the name's length.
    let close = declared
        .iter()
        .map(|name| (strsim::damerau_levenshtein(label, name), *name))
        .filter(|&(distance, _)| distance <= label.chars().count().max(3) / 3)
        .min();
    let instead = "this fix replaces the reference with a new key, which would hide that: fix the reference instead if so";
    match (close, declared.as_slice()) {
        (Some((_, name)), _) => format!(
            "aws_kms_key.{label} is not declared in this module; did you mean aws_kms_key.{name}? {instead}"
        ),
        (None, []) => format!(
            "this module declares no aws_kms_key at all: aws_kms_key.{label} may be declared in a file ctfix did not read (a file missing from the directory, or not passed on the command line); {instead}"
        ),
        (None, names) => format!(
            "this module declares {} but no aws_kms_key.{label}: a typo, or a file ctfix did not read? {instead}",
            names
                .iter()
                .map(|name| format!("aws_kms_key.{name}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The note of a fix that replaces an alias: what the alias may stand for, and the better fix.
fn alias_note(alias: &str) -> String {
    let (alias, better) = match alias
        .strip_prefix("data.aws_kms_alias.")
        .and_then(|rest| rest.strip_suffix(".arn"))
    {
        Some(label) => (
            format!("the alias data.aws_kms_alias.{label} looks up"),
            format!("its key's ARN, data.aws_kms_alias.{label}.target_key_arn"),
        ),
        None => (
            format!("the alias {alias}"),
            format!(
                "that key's ARN (`aws kms describe-key --key-id {}` shows it)",
                alias.trim_matches('"')
            ),
        ),
    };
    format!(
        "{alias} may name a central or shared key (an organization's log key) that log readers depend on, and the generated key would move new logs off it: prefer pointing kms_key_id at {better}"
    )
}

/// Whether the trail sets `is_organization_trail` to true (under the module's defaults).
fn is_organization_trail(module: &Module, trail: &Trail) -> bool {
    module
        .block(trail.at)
        .body
        .get_attribute("is_organization_trail")
        .is_some_and(|attr| {
            crate::resolve::Resolver::new(module).value_of(&attr.value, trail.at.file)
                == crate::resolve::Value::Bool(true)
        })
}

/// The base of a generated key's label: readable and tied to the trail.
fn key_label_base(trail_label: &str) -> String {
    // Keep it a valid identifier whatever the trail's label holds.
    let mut clean: String = trail_label
        .chars()
        .map(|c| {
            if crate::module::is_identifier_continue(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !clean.starts_with(crate::module::is_identifier_start) {
        clean.insert(0, '_');
    }
    if clean.to_ascii_lowercase().contains("trail") {
        format!("{clean}_key")
    } else {
        format!("{clean}_cloudtrail")
    }
}

/// An existing data source of this type on the same provider, without `count`/`for_each`
/// (those would need an index). `current` wins when there are several.
fn existing_data_source(
    module: &Module,
    data_type: &str,
    provider: Option<&str>,
) -> Option<String> {
    let mut labels: Vec<String> = module
        .find_blocks("data", Some(data_type), None)
        .filter_map(|at| {
            let block = module.block(at);
            let text = &module.files[at.file].source.text;
            let same_provider = provider_of(text, block).as_deref() == provider;
            let single =
                !block.body.has_attribute("count") && !block.body.has_attribute("for_each");
            let label = block.labels.get(1).map(|l| l.as_str().to_owned())?;
            (same_provider && single && is_identifier(&label)).then_some(label)
        })
        .collect();
    labels.sort();
    labels
        .iter()
        .find(|label| *label == "current")
        .or_else(|| labels.first())
        .cloned()
}

/// How the trail's `name` can be written inside a string.
fn trail_name(text: &str, block: &Block) -> TrailName {
    let Some(attr) = block.body.get_attribute("name") else {
        return TrailName::Unknown;
    };
    let Some(source) = attr.value.span().and_then(|r| text.get(r)) else {
        return TrailName::Unknown;
    };
    if source.contains('\n') {
        return TrailName::Unknown;
    }
    let quoted = matches!(
        attr.value,
        hcl_edit::expr::Expression::String(_) | hcl_edit::expr::Expression::StringTemplate(_)
    );
    if quoted && source.len() >= 2 && source.starts_with('"') && source.ends_with('"') {
        TrailName::Quoted(source[1..source.len() - 1].to_owned())
    } else {
        TrailName::Expression(source.to_owned())
    }
}

/// The edit that makes the top-level attribute `name` equal `value` (text, lines after the
/// first relative to the attribute): replace an existing value, or insert the attribute
/// aligned the way `terraform fmt` aligns it. The edit's path is left empty for the caller.
fn set_attribute(
    text: &str,
    block: &Block,
    name: &str,
    value: &str,
    newline: &str,
) -> Option<Edit> {
    let edit = set_attribute_in_place(text, block, name, value, newline)?;
    // A body whose first attribute or block starts on the `{` line (`{ tags = {` … `}`) can
    // hold no second one: the content after `{` moves to a line of its own, within the same
    // edit (its bytes are re-emitted unchanged). A one-line body's edit, which starts at the
    // `{`, has opened it up already.
    if block.body.get_attribute(name).is_none() {
        let open = open_brace(text, block)?;
        let brace_line_end = line_end(text, open);
        let first = block.body.iter().next().and_then(|first| first.span());
        if let Some(first) =
            first.filter(|first| first.start < brace_line_end && edit.range.start > open)
        {
            let block_indent = line_indent(text, block.span()?.start);
            let mut new = format!("{{{newline}{block_indent}  ");
            new.push_str(&text[first.start..edit.range.start]);
            new.push_str(&edit.text);
            return Some(Edit {
                path: PathBuf::new(),
                range: open..edit.range.end,
                text: new,
            });
        }
    }
    Some(edit)
}

/// [`set_attribute`] for bodies laid out one structure per line.
fn set_attribute_in_place(
    text: &str,
    block: &Block,
    name: &str,
    value: &str,
    newline: &str,
) -> Option<Edit> {
    if let Some(attr) = block.body.get_attribute(name) {
        return Some(Edit {
            path: PathBuf::new(),
            range: attr.value.span()?,
            text: value.to_owned(),
        });
    }
    let multi_line = value.contains('\n');
    let block_span = block.span()?;
    let close = block_span.end.checked_sub(1)?;
    if text.as_bytes().get(close) != Some(&b'}') {
        return None;
    }
    let open = open_brace(text, block)?;
    let block_indent = line_indent(text, block_span.start);
    // `value`'s later lines, indented under the attribute.
    let value_at = |indent: &str| indent_lines_after_first(value, indent, newline);

    // A body on one line (`{}` or `{ name = "x" }`) is opened up: the only case where the
    // inserted text spans an existing line.
    if !text[open..close].contains('\n') {
        let indent = format!("{block_indent}  ");
        let inner = text[open + 1..close].trim();
        let mut new = format!("{{{newline}");
        // A one-line body holds at most one attribute; it and the new one form one group.
        let sole = block.body.attributes().next().and_then(|attr| {
            let whole = text.get(attr.span()?)?;
            let existing = text.get(attr.value.span()?)?;
            (whole == inner).then(|| (attr.key.as_str().to_owned(), existing.to_owned()))
        });
        match sole {
            Some((key, existing)) if !multi_line => {
                let width = key.chars().count().max(name.chars().count());
                new.push_str(&format!("{indent}{key:<width$} = {existing}{newline}"));
                new.push_str(&format!(
                    "{indent}{name:<width$} = {}{newline}",
                    value_at(&indent)
                ));
            }
            _ if inner.is_empty() => {
                new.push_str(&format!("{indent}{name} = {}{newline}", value_at(&indent)));
            }
            _ => {
                new.push_str(&format!("{indent}{inner}{newline}{newline}"));
                new.push_str(&format!("{indent}{name} = {}{newline}", value_at(&indent)));
            }
        }
        new.push_str(&format!("{block_indent}}}"));
        return Some(Edit {
            path: PathBuf::new(),
            range: open..close + 1,
            text: new,
        });
    }

    let attributes: Vec<&Attribute> = block.body.attributes().collect();
    if attributes.is_empty() {
        // Only nested blocks: the attribute goes first, on its own line after `{`.
        let indent =
            first_structure_indent(text, block).unwrap_or_else(|| format!("{block_indent}  "));
        let at = line_end(text, open);
        return Some(Edit {
            path: PathBuf::new(),
            range: at..at,
            text: format!("{newline}{indent}{name} = {}", value_at(&indent)),
        });
    }
    let groups = alignment_groups(text, &attributes)?;
    let width_needed = name.chars().count();
    // A one-line value prefers joining the last group already at least as wide as its key
    // (nothing else moves); otherwise it goes after the last attribute, as a group of its
    // own. A multi-line value belongs to no group.
    let joinable = if multi_line {
        None
    } else {
        groups.iter().rev().find(|g| g.width >= width_needed)
    };
    let (after, placement) = match joinable {
        Some(group) => (attributes[group.last], Placement::Join(group.width)),
        None => {
            let last = attributes.len() - 1;
            let in_group = groups.iter().any(|g| g.last == last);
            let placement = if in_group && !multi_line {
                Placement::OwnGroup
            } else {
                Placement::Plain
            };
            (attributes[last], placement)
        }
    };
    let span = after.span()?;
    let indent = if text[open..span.start].contains('\n') {
        line_indent(text, span.start)
    } else {
        format!("{block_indent}  ")
    };
    let value = value_at(&indent);
    let line = match placement {
        Placement::Join(width) => format!("{indent}{name:<width$} = {value}"),
        Placement::OwnGroup => format!("{newline}{indent}{name} = {value}"),
        Placement::Plain => format!("{indent}{name} = {value}"),
    };
    // A heredoc's span ends at its closing delimiter, before the newline: like any value.
    let at = line_end(text, span.end);
    if at > close {
        // The block's `}` shares the anchor's line (`tags = {...} }`): the new line goes
        // before it, and `}` moves to a line of its own.
        let between = &text[span.end..close];
        let range = if between.trim().is_empty() {
            span.end..close
        } else {
            span.end..span.end
        };
        return Some(Edit {
            path: PathBuf::new(),
            range,
            text: format!("{newline}{line}{newline}{block_indent}"),
        });
    }
    Some(Edit {
        path: PathBuf::new(),
        range: at..at,
        text: format!("{newline}{line}"),
    })
}

/// The first line of `text` as is, later lines prefixed with `indent`, joined by `newline`.
fn indent_lines_after_first(text: &str, indent: &str, newline: &str) -> String {
    let mut lines = text.lines();
    let mut out = lines.next().unwrap_or("").to_owned();
    for line in lines {
        out.push_str(newline);
        if !line.is_empty() {
            out.push_str(indent);
        }
        out.push_str(line);
    }
    out
}

/// Where a new attribute line goes relative to the attribute it follows.
enum Placement {
    /// Into that attribute's alignment group, padded to the group's key width.
    Join(usize),
    /// After a blank line, so the group above keeps its alignment.
    OwnGroup,
    /// Right after it with one space before `=`: after a multi-line value (which ends any
    /// group), or a multi-line value itself (which joins none).
    Plain,
}

/// A run of top-level attributes `terraform fmt` aligns together.
struct Group {
    /// Index of its last attribute.
    last: usize,
    /// Its widest key, in characters.
    width: usize,
}

/// The alignment groups among a body's attributes, as `terraform fmt` (hclwrite) forms them:
/// consecutive lines holding `key = value` with the value complete on that line. A heredoc
/// counts as one line; any other multi-line value belongs to no group and ends the one above.
fn alignment_groups(text: &str, attributes: &[&Attribute]) -> Option<Vec<Group>> {
    let spans: Vec<_> = attributes.iter().map(|a| a.span()).collect::<Option<_>>()?;
    let one_line = |i: usize| {
        matches!(
            attributes[i].value,
            hcl_edit::expr::Expression::HeredocTemplate(_)
        ) || !text[spans[i].clone()].contains('\n')
    };
    let mut groups: Vec<Group> = Vec::new();
    for i in 0..attributes.len() {
        if !one_line(i) {
            continue;
        }
        let width = attributes[i].key.as_str().chars().count();
        // The group goes on if its last attribute is the one right above, on the line above.
        let continues = groups.last().is_some_and(|g| {
            let gap = &text[spans[g.last].end..spans[i].start];
            g.last + 1 == i && memchr::memchr_iter(b'\n', gap.as_bytes()).count() == 1
        });
        match groups.last_mut() {
            Some(group) if continues => {
                group.last = i;
                group.width = group.width.max(width);
            }
            _ => groups.push(Group { last: i, width }),
        }
    }
    Some(groups)
}

/// The byte offset of a block's `{`.
fn open_brace(text: &str, block: &Block) -> Option<usize> {
    let after_labels = block
        .labels
        .last()
        .and_then(|label| label.span())
        .or_else(|| block.ident.span())?
        .end;
    // Labels are quoted strings or identifiers, so the next `{` is the block's.
    text[after_labels..].find('{').map(|i| after_labels + i)
}

/// The indentation of the first structure inside a block's body.
fn first_structure_indent(text: &str, block: &Block) -> Option<String> {
    let first = block.body.iter().next()?.span()?;
    Some(line_indent(text, first.start))
}

/// The whitespace between the start of the line holding `offset` and its first other character.
fn line_indent(text: &str, offset: usize) -> String {
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    text[line_start..]
        .chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .collect()
}

/// The offset of the line terminator (`\r\n` or `\n`) ending the line holding `offset`, or the
/// end of the text. Block comments right after `offset` (`value /* … */`) belong to that line
/// even when they span several: text inserted "at the end of the line" must not land inside
/// one.
fn line_end(text: &str, offset: usize) -> usize {
    let mut offset = offset;
    loop {
        let rest = &text[offset..];
        let skipped = rest.len() - rest.trim_start_matches([' ', '\t']).len();
        let rest = &rest[skipped..];
        if !rest.starts_with("/*") {
            break;
        }
        match rest.find("*/") {
            Some(end) => offset += skipped + end + 2,
            None => return text.len(),
        }
    }
    match memchr::memchr(b'\n', &text.as_bytes()[offset..]) {
        Some(i) => {
            let lf = offset + i;
            if lf > offset && text.as_bytes()[lf - 1] == b'\r' {
                lf - 1
            } else {
                lf
            }
        }
        None => text.len(),
    }
}

/// The edit that appends `blocks` after the block, each after one blank line, in the file's
/// line ending; a file without a final newline keeps having none.
fn append_after_block(text: &str, block: &Block, blocks: &[String], newline: &str) -> Edit {
    let end = block.span().map_or(text.len(), |r| r.end);
    let indent = line_indent(text, block.span().map_or(0, |r| r.start));
    let rendered: Vec<String> = blocks
        .iter()
        .map(|b| indent_lines(b, &indent, newline))
        .collect();
    let end_of_line = line_end(text, end);
    match text[end_of_line..].find('\n') {
        Some(i) => {
            let at = end_of_line + i + 1;
            let mut new = String::new();
            for block in &rendered {
                new.push_str(newline);
                new.push_str(block);
                new.push_str(newline);
            }
            Edit {
                path: PathBuf::new(),
                range: at..at,
                text: new,
            }
        }
        None => {
            let mut new = String::new();
            for block in &rendered {
                new.push_str(newline);
                new.push_str(newline);
                new.push_str(block);
            }
            Edit {
                path: PathBuf::new(),
                range: text.len()..text.len(),
                text: new,
            }
        }
    }
}

/// Applies non-overlapping edits to `text`.
pub fn apply_edits(text: &str, edits: &[&Edit]) -> Result<String, String> {
    let mut sorted: Vec<&Edit> = edits.to_vec();
    sorted.sort_by_key(|e| (e.range.start, e.range.end));
    let mut out =
        String::with_capacity(text.len() + edits.iter().map(|e| e.text.len()).sum::<usize>());
    let mut cursor = 0;
    for edit in sorted {
        if edit.range.start < cursor || edit.range.end > text.len() {
            return Err(format!(
                "overlapping or out-of-range edit at byte {}",
                edit.range.start
            ));
        }
        if !text.is_char_boundary(edit.range.start) || !text.is_char_boundary(edit.range.end) {
            return Err(format!(
                "edit at byte {} splits a character",
                edit.range.start
            ));
        }
        out.push_str(&text[cursor..edit.range.start]);
        out.push_str(&edit.text);
        cursor = edit.range.end;
    }
    out.push_str(&text[cursor..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_end_stops_before_crlf() {
        assert_eq!(line_end("ab\r\ncd", 0), 2);
        assert_eq!(line_end("ab\ncd", 1), 2);
        assert_eq!(line_end("ab", 0), 2);
        assert_eq!(line_end("a /* b\nc */ # d\ne", 1), 15);
        assert_eq!(line_end("a /* b\nc", 1), 8);
        // The comment's whole length is skipped, also when nothing precedes it.
        assert_eq!(line_end("a/*\n*/\nb", 1), 6);
        // A line that is only its terminator: nothing before the text is read.
        assert_eq!(line_end("\nb", 0), 0);
        assert_eq!(line_end("a\r\nb", 2), 2);
    }

    #[test]
    fn a_heredoc_is_one_line_of_its_alignment_group() {
        // `terraform fmt` aligns all three keys.
        let group_of = |text: &str| {
            let body: hcl_edit::structure::Body = text.parse().unwrap();
            let block = body.blocks().next().unwrap();
            let attributes: Vec<&Attribute> = block.body.attributes().collect();
            let groups = alignment_groups(text, &attributes).unwrap();
            groups.iter().map(|g| (g.last, g.width)).collect::<Vec<_>>()
        };
        let middle = "resource \"aws_kms_key\" \"k\" {\n  description = \"a\"\n  policy = <<EOT\n{}\nEOT\n  is_enabled = true\n}\n";
        assert_eq!(group_of(middle), [(2, 11)]);
        // A blank line after the heredoc starts a new group.
        let apart = "resource \"aws_kms_key\" \"k\" {\n  description = \"a\"\n  policy = <<EOT\n{}\nEOT\n\n  is_enabled = true\n}\n";
        assert_eq!(group_of(apart), [(1, 11), (2, 10)]);
        // Any other multi-line value belongs to no group.
        let object = "resource \"aws_kms_key\" \"k\" {\n  description = \"a\"\n  tags = {\n    a = 1\n  }\n  is_enabled = true\n}\n";
        assert_eq!(group_of(object), [(0, 11), (2, 10)]);
    }

    fn module_of(text: &str) -> Module {
        let source =
            crate::parse::SourceFile::from_bytes("m.tf", text.as_bytes().to_vec()).unwrap();
        Module::from_sources(std::path::Path::new("."), vec![source])
    }

    #[test]
    fn the_note_for_an_undeclared_key_names_the_close_label_or_says_none_is_declared() {
        let keys = module_of(
            "resource \"aws_kms_key\" \"trail_key\" {}\nresource \"aws_kms_key\" \"ab\" {}\ndata \"aws_kms_key\" \"trail_kez\" {}\nresource \"aws_s3_bucket\" \"trail_keu\" {}\n",
        );
        let note = undeclared_key_note(&keys, "trail_kye");
        assert!(
            note.contains("did you mean aws_kms_key.trail_key?"),
            "{note}"
        );
        // A third of the name's length (at least one): "ac" is one edit from "ab".
        assert!(undeclared_key_note(&keys, "ac").contains("did you mean aws_kms_key.ab?"));
        let far = undeclared_key_note(&keys, "logs");
        assert!(
            far.contains("declares aws_kms_key.ab, aws_kms_key.trail_key but no aws_kms_key.logs"),
            "{far}"
        );
        let none = undeclared_key_note(&module_of("resource \"aws_s3_bucket\" \"k\" {}\n"), "k");
        assert!(none.contains("declares no aws_kms_key at all"), "{none}");
    }

    #[test]
    fn the_note_for_a_replaced_alias_points_at_its_key() {
        let data = alias_note("data.aws_kms_alias.logs.arn");
        assert!(
            data.contains("data.aws_kms_alias.logs.target_key_arn"),
            "{data}"
        );
        let literal = alias_note("\"alias/logs\"");
        assert!(
            literal.contains("aws kms describe-key --key-id alias/logs`"),
            "{literal}"
        );
    }

    #[test]
    fn an_organization_trail_is_one_whose_flag_is_true() {
        for (flag, expected) in [
            ("true", true),
            ("false", false),
            ("var.org", true),
            ("", false),
        ] {
            let attribute = if flag.is_empty() {
                String::new()
            } else {
                format!("  is_organization_trail = {flag}\n")
            };
            let module = module_of(&format!(
                "variable \"org\" {{\n  default = true\n}}\nresource \"aws_cloudtrail\" \"t\" {{\n{attribute}}}\n"
            ));
            let trails = crate::analyze::find_trails(&module);
            assert_eq!(
                is_organization_trail(&module, &trails[0]),
                expected,
                "{flag:?}"
            );
        }
    }

    #[test]
    fn an_existing_data_source_named_current_is_preferred() {
        let module = module_of(
            "data \"aws_caller_identity\" \"a\" {}\ndata \"aws_caller_identity\" \"current\" {}\n",
        );
        assert_eq!(
            existing_data_source(&module, "aws_caller_identity", None).as_deref(),
            Some("current")
        );
    }

    #[test]
    fn a_trail_name_is_quoted_text_or_an_expression() {
        let name_of = |value: &str| {
            let text = format!("resource \"aws_cloudtrail\" \"t\" {{\n  name = {value}\n}}\n");
            let module = module_of(&text);
            let trails = crate::analyze::find_trails(&module);
            trail_name(&text, module.block(trails[0].at))
        };
        assert_eq!(name_of("\"audit\""), TrailName::Quoted("audit".into()));
        assert_eq!(
            name_of("\"${var.p}-trail\""),
            TrailName::Quoted("${var.p}-trail".into())
        );
        assert_eq!(
            name_of("var.name"),
            TrailName::Expression("var.name".into())
        );
        assert_eq!(name_of("local.n"), TrailName::Expression("local.n".into()));
        // Begins and ends with a quote, but is no string.
        assert_eq!(
            name_of("\"a\" == \"b\" ? \"c\" : \"d\""),
            TrailName::Expression("\"a\" == \"b\" ? \"c\" : \"d\"".into())
        );
    }

    #[test]
    fn the_note_for_a_partial_key_names_what_it_lacks() {
        let key = |label: &str, missing: Vec<&'static str>| PartialKey {
            label: label.into(),
            index: "",
            missing,
        };
        let note = partial_keys_note(&[
            key("logs", vec!["kms:DescribeKey"]),
            key("other", vec!["kms:GenerateDataKey*"]),
        ]);
        assert!(
            note.contains("aws_kms_key.logs already lets CloudTrail kms:GenerateDataKey*, but its policy has no statement allowing cloudtrail.amazonaws.com kms:DescribeKey (like AllowCloudTrailToDescribeKey)"),
            "{note}"
        );
        assert!(note.contains("set kms_key_id = aws_kms_key.logs.arn; aws_kms_key.other already lets CloudTrail kms:DescribeKey,"), "{note}");
    }

    #[test]
    fn a_central_key_expression_is_checked_against_the_declarations() {
        let module = module_of(
            "variable \"k\" {}\nlocals {\n  central = \"x\"\n}\nmodule \"kms\" {\n  source = \"./kms\"\n}\nresource \"aws_kms_key\" \"central\" {}\ndata \"aws_kms_key\" \"c\" {\n  key_id = \"alias/x\"\n}\n",
        );
        for declared in [
            "var.k",
            "local.central",
            "module.kms.key_arn",
            "aws_kms_key.central.arn",
            "data.aws_kms_key.c.arn",
        ] {
            assert!(
                matches!(undeclared_root(&module, declared), Undeclared::None),
                "{declared}"
            );
        }
        assert!(
            matches!(undeclared_root(&module, "var.other"), Undeclared::Variable(name) if name == "other")
        );
        for (missing, named) in [
            ("local.other", "local.other"),
            ("module.other.key_arn", "module.other"),
            ("aws_kms_key.other.arn", "aws_kms_key.other"),
            ("data.aws_kms_key.other.arn", "data.aws_kms_key.other"),
            ("x", "x"),
        ] {
            assert!(
                matches!(undeclared_root(&module, missing), Undeclared::Other(what) if what == named),
                "{missing}"
            );
        }
    }

    #[test]
    fn a_called_modules_provider_is_followed_to_the_caller() {
        let passed = |providers: &str, inner: &str| {
            let text = format!("module \"m\" {{\n  source = \"./m\"\n{providers}}}\n");
            let body: hcl_edit::structure::Body = text.parse().unwrap();
            let provider = passed_provider(&text, body.blocks().next().unwrap(), inner);
            provider
        };
        let map = "  providers = {\n    aws       = aws.eu\n    aws.audit = aws.security\n  }\n";
        assert_eq!(passed(map, "aws").as_deref(), Some("aws.eu"));
        assert_eq!(passed(map, "aws.audit").as_deref(), Some("aws.security"));
        assert_eq!(passed(map, "aws.other"), None);
        // The default configuration is passed implicitly; an alias is not.
        assert_eq!(passed("", "aws").as_deref(), Some("aws"));
        assert_eq!(passed("", "aws.audit"), None);
        assert_eq!(
            passed("  providers = { aws = \"aws.eu\" }\n", "aws").as_deref(),
            Some("aws.eu")
        );
    }

    #[test]
    fn the_statements_shown_are_the_missing_ones() {
        let describe = json_statements(&["AllowCloudTrailToDescribeKey"]);
        assert!(describe.contains("kms:DescribeKey"), "{describe}");
        assert!(!describe.contains("GenerateDataKey"), "{describe}");
        let both = json_statements(&[
            "AllowCloudTrailToEncryptLogs",
            "AllowCloudTrailToDescribeKey",
        ]);
        assert!(both.contains("kms:DescribeKey") && both.contains("kms:GenerateDataKey*"));
        assert_eq!(json_statements(&[]), "[]");
    }

    #[test]
    fn a_claimed_label_takes_the_first_free_number() {
        let source = crate::parse::SourceFile::from_bytes(
            "m.tf",
            b"resource \"aws_kms_key\" \"k\" {}\nresource \"aws_kms_key\" \"k_2\" {}\n".to_vec(),
        )
        .unwrap();
        let module = Module::from_sources(std::path::Path::new("."), vec![source]);
        let mut planner = FixPlanner::new(&module);
        assert_eq!(planner.claim_label("resource", "aws_kms_key", "k"), "k_3");
        assert_eq!(planner.claim_label("resource", "aws_kms_key", "k"), "k_4");
        assert_eq!(planner.claim_label("resource", "aws_kms_key", "j"), "j");
        assert_eq!(planner.claim_label("data", "aws_kms_key", "k"), "k");
    }

    #[test]
    fn labels_read_well() {
        assert_eq!(key_label_base("main"), "main_cloudtrail");
        assert_eq!(key_label_base("cloudtrail"), "cloudtrail_key");
        assert_eq!(key_label_base("org_trail"), "org_trail_key");
        assert_eq!(key_label_base("audit|prod"), "audit_prod_cloudtrail");
        assert_eq!(key_label_base("1st"), "_1st_cloudtrail");
        // Found by fuzzing: alphabetic, but not identifier characters (a circled letter, a
        // byte order mark) used to pass through and break the reference.
        assert_eq!(key_label_base("a\u{24e9}\u{feff}b"), "a__b_cloudtrail");
        assert_eq!(key_label_base("\u{e9}t\u{e9}"), "\u{e9}t\u{e9}_cloudtrail");
        for label in ["a\u{24e9}", "x\u{feff}"] {
            assert!(!crate::module::is_identifier(label), "{label:?}");
            assert!(hcl_edit::Ident::try_new(label).is_err(), "{label:?}");
        }
    }

    #[test]
    fn edits_apply_in_order_and_refuse_overlap() {
        let a = Edit {
            path: PathBuf::new(),
            range: 4..5,
            text: "X".into(),
        };
        let b = Edit {
            path: PathBuf::new(),
            range: 0..0,
            text: ">".into(),
        };
        assert_eq!(apply_edits("0123456", &[&a, &b]).unwrap(), ">0123X56");
        let c = Edit {
            path: PathBuf::new(),
            range: 3..6,
            text: String::new(),
        };
        assert!(apply_edits("0123456", &[&a, &c]).is_err());
        // Either end inside a character is refused.
        for range in [0..1, 1..2] {
            let split = Edit {
                path: PathBuf::new(),
                range,
                text: String::new(),
            };
            assert!(apply_edits("\u{e9}", &[&split]).is_err());
        }
    }
}
