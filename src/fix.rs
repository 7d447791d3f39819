//! Stage 4: turn a verdict into text edits. Edits are located with hcl-edit's spans and
//! spliced into the original text, so every byte outside them stays as it was.

use std::collections::{BTreeMap, BTreeSet};

use hcl_edit::structure::{Attribute, Block};
use hcl_edit::Span;

use crate::analyze::{Remedy, Trail};
use crate::key_template::{render_data_source, render_key, KeyParams, TrailName};
use crate::model::{Applicability, Edit, FileError, Fix};
use crate::module::{provider_of, Module};

/// `kms_key_id`: the attribute every fix sets.
const KMS_KEY_ID: &str = "kms_key_id";

/// Plans fixes for the trails of one module, keeping labels unique across all of them.
#[derive(Debug)]
pub struct FixPlanner<'m> {
    module: &'m Module,
    /// `(block type, first label, second label)` declared or already planned.
    used: BTreeSet<(String, String, String)>,
    /// Data sources planned by an earlier fix, by `(data type, provider)`.
    planned_data: BTreeMap<(&'static str, Option<String>), String>,
}

impl<'m> FixPlanner<'m> {
    /// A planner for `module`.
    pub fn new(module: &'m Module) -> Self {
        FixPlanner {
            module,
            used: module.declared.clone(),
            planned_data: BTreeMap::new(),
        }
    }

    /// The fix for a trail, `None` when its remedy is `None`.
    pub fn plan(&mut self, trail: &Trail, remedy: &Remedy) -> Option<Result<Fix, FileError>> {
        match remedy {
            Remedy::None => None,
            Remedy::GenerateKey => Some(self.generate_key(trail)),
        }
    }

    fn generate_key(&mut self, trail: &Trail) -> Result<Fix, FileError> {
        let module = self.module;
        let file = &module.files[trail.at.file];
        let text = &file.source.text;
        let newline = file.source.newline();
        let block = module.block(trail.at);

        let key_label = self.claim_label("resource", "aws_kms_key", &key_label_base(&trail.label));
        let mut new_blocks = Vec::new();
        let partition = self.data_source("aws_partition", trail, &mut new_blocks);
        let identity = self.data_source("aws_caller_identity", trail, &mut new_blocks);

        let index = trail
            .meta_argument
            .as_ref()
            .map_or("", |meta| meta.instance_index());
        let reference = format!("aws_kms_key.{key_label}{index}.arn");

        let mut meta_arguments = Vec::new();
        if let Some(provider) = &trail.provider {
            meta_arguments.push(("provider", provider.clone()));
        }
        if let Some(meta) = &trail.meta_argument {
            meta_arguments.push((meta.name(), meta.expression().to_owned()));
        }
        let trail_name = trail_name(text, block);
        let key = render_key(&KeyParams {
            key_label: &key_label,
            trail_address: &trail.address,
            trail_name: &trail_name,
            meta_arguments: &meta_arguments,
            partition_label: &partition,
            identity_label: &identity,
        });

        let wire = wire_kms_key_id(text, block, &reference, newline).ok_or_else(|| {
            let (line, column) = (trail.line, trail.column);
            FileError::at(
                &file.source.path,
                line,
                column,
                format!(
                    "{}: cannot locate the block's braces to insert kms_key_id",
                    trail.address
                ),
            )
        })?;
        let mut blocks = vec![key];
        blocks.extend(new_blocks.iter().map(|(_, text)| text.clone()));
        let append = append_after_block(text, block, &blocks, newline);

        let mut title = format!("generate aws_kms_key.{key_label}");
        for (address, _) in &new_blocks {
            title.push_str(&format!(" and {address}"));
        }
        title.push_str(&format!(" and set {KMS_KEY_ID} = {reference}"));
        Ok(Fix {
            path: file.source.path.clone(),
            title,
            applicability: Applicability::Safe,
            edits: vec![wire, append],
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

    /// The label of a usable `data "<data_type>"` on the trail's provider: an existing one, one
    /// an earlier fix added, or a new one pushed onto `new_blocks` as `(address, text)`.
    fn data_source(
        &mut self,
        data_type: &'static str,
        trail: &Trail,
        new_blocks: &mut Vec<(String, String)>,
    ) -> String {
        if let Some(label) = existing_data_source(self.module, data_type, trail.provider.as_deref())
        {
            return label;
        }
        let key = (data_type, trail.provider.clone());
        if let Some(label) = self.planned_data.get(&key) {
            return label.clone();
        }
        let base = match &trail.provider {
            None => "current".to_owned(),
            Some(provider) => provider
                .rsplit('.')
                .next()
                .filter(|alias| !alias.is_empty())
                .unwrap_or("current")
                .to_owned(),
        };
        let label = self.claim_label("data", data_type, &base);
        new_blocks.push((
            format!("data.{data_type}.{label}"),
            render_data_source(data_type, &label, trail.provider.as_deref()),
        ));
        self.planned_data.insert(key, label.clone());
        label
    }
}

/// The base of a generated key's label: readable and tied to the trail.
fn key_label_base(trail_label: &str) -> String {
    if trail_label.to_ascii_lowercase().contains("trail") {
        format!("{trail_label}_key")
    } else {
        format!("{trail_label}_cloudtrail")
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
            (same_provider && single).then(|| block.labels.get(1).map(|l| l.as_str().to_owned()))?
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

/// The edit that makes `kms_key_id` equal `reference`: replace the value of an existing
/// top-level `kms_key_id`, or insert one after the last top-level attribute, aligned the way
/// `terraform fmt` aligns it.
fn wire_kms_key_id(text: &str, block: &Block, reference: &str, newline: &str) -> Option<Edit> {
    if let Some(attr) = block.body.get_attribute(KMS_KEY_ID) {
        return Some(Edit {
            range: attr.value.span()?,
            text: reference.to_owned(),
        });
    }
    let block_span = block.span()?;
    let close = block_span.end.checked_sub(1)?;
    if text.as_bytes().get(close) != Some(&b'}') {
        return None;
    }
    let open = open_brace(text, block)?;
    let block_indent = line_indent(text, block_span.start);

    // A body on one line (`{}` or `{ name = "x" }`) is opened up: the only case where the
    // inserted text spans an existing line.
    if !text[open..close].contains('\n') {
        let indent = format!("{block_indent}  ");
        let inner = text[open + 1..close].trim();
        let mut new = format!("{{{newline}");
        // A one-line body holds at most one attribute; it and kms_key_id form one group.
        let sole = block.body.attributes().next().and_then(|attr| {
            let whole = text.get(attr.span()?)?;
            let value = text.get(attr.value.span()?)?;
            (whole == inner).then(|| (attr.key.as_str().to_owned(), value.to_owned()))
        });
        match sole {
            Some((key, value)) => {
                let width = key.chars().count().max(KMS_KEY_ID.len());
                new.push_str(&format!("{indent}{key:<width$} = {value}{newline}"));
                new.push_str(&format!(
                    "{indent}{KMS_KEY_ID:<width$} = {reference}{newline}"
                ));
            }
            None if inner.is_empty() => {
                new.push_str(&format!("{indent}{KMS_KEY_ID} = {reference}{newline}"));
            }
            None => {
                new.push_str(&format!("{indent}{inner}{newline}{newline}"));
                new.push_str(&format!("{indent}{KMS_KEY_ID} = {reference}{newline}"));
            }
        }
        new.push_str(&format!("{block_indent}}}"));
        return Some(Edit {
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
            range: at..at,
            text: format!("{newline}{indent}{KMS_KEY_ID} = {reference}"),
        });
    }
    let groups = alignment_groups(text, &attributes)?;
    // Prefer joining the last group already at least as wide as `kms_key_id` (nothing else
    // moves); otherwise go after the last attribute, as a group of its own.
    let (after, line_for) = match groups.iter().rev().find(|g| g.width >= KMS_KEY_ID.len()) {
        Some(group) => (attributes[group.last], Placement::Join(group.width)),
        None => {
            let last = attributes.len() - 1;
            let in_group = groups.iter().any(|g| g.last == last);
            let placement = if in_group {
                Placement::OwnGroup
            } else {
                Placement::AfterMultiLine
            };
            (attributes[last], placement)
        }
    };
    let span = after.span()?;
    let indent = line_indent(text, span.start);
    let line = match line_for {
        Placement::Join(width) => format!("{indent}{KMS_KEY_ID:<width$} = {reference}"),
        Placement::OwnGroup => format!("{newline}{indent}{KMS_KEY_ID} = {reference}"),
        Placement::AfterMultiLine => format!("{indent}{KMS_KEY_ID} = {reference}"),
    };
    if text[..span.end].ends_with('\n') {
        // A value that ends with its own newline (a heredoc): insert on the next line.
        return Some(Edit {
            range: span.end..span.end,
            text: format!("{line}{newline}"),
        });
    }
    let at = line_end(text, span.end);
    Some(Edit {
        range: at..at,
        text: format!("{newline}{line}"),
    })
}

/// Where the new `kms_key_id` line goes relative to the attribute it follows.
enum Placement {
    /// Into that attribute's alignment group, padded to the group's key width.
    Join(usize),
    /// After a blank line, so the group above keeps its alignment.
    OwnGroup,
    /// Right after a multi-line value, which ends any group.
    AfterMultiLine,
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
        let continues =
            i > 0 && one_line(i - 1) && groups.last().is_some_and(|g| g.last == i - 1) && {
                let gap = &text[spans[i - 1].end..spans[i].start];
                let newlines = memchr::memchr_iter(b'\n', gap.as_bytes()).count()
                    + usize::from(text[..spans[i - 1].end].ends_with('\n'));
                newlines == 1
            };
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
/// end of the text.
fn line_end(text: &str, offset: usize) -> usize {
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
        .map(|b| {
            b.lines()
                .map(|line| {
                    if line.is_empty() {
                        String::new()
                    } else {
                        format!("{indent}{line}")
                    }
                })
                .collect::<Vec<_>>()
                .join(newline)
        })
        .collect();
    match memchr::memchr(b'\n', &text.as_bytes()[end..]) {
        Some(i) => {
            let at = end + i + 1;
            let mut new = String::new();
            for block in &rendered {
                new.push_str(newline);
                new.push_str(block);
                new.push_str(newline);
            }
            Edit {
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
    }

    #[test]
    fn labels_read_well() {
        assert_eq!(key_label_base("main"), "main_cloudtrail");
        assert_eq!(key_label_base("cloudtrail"), "cloudtrail_key");
        assert_eq!(key_label_base("org_trail"), "org_trail_key");
    }

    #[test]
    fn edits_apply_in_order_and_refuse_overlap() {
        let a = Edit {
            range: 4..5,
            text: "X".into(),
        };
        let b = Edit {
            range: 0..0,
            text: ">".into(),
        };
        assert_eq!(apply_edits("0123456", &[&a, &b]).unwrap(), ">0123X56");
        let c = Edit {
            range: 3..6,
            text: String::new(),
        };
        assert!(apply_edits("0123456", &[&a, &c]).is_err());
    }
}
