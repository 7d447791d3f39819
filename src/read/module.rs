//! A Terraform module (one directory) read and parsed as a whole: the context every decision
//! about a trail needs — which keys, data sources, variables and labels exist.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use hcl_edit::structure::{Block, Body};
use hcl_edit::Span;

use crate::discover::ModuleDir;
use crate::model::FileError;
use crate::parse::{parse_source, read_source, SourceFile};

/// Text that stands in for files on disk, by path: the language server's open documents.
pub type Overlay = std::collections::BTreeMap<PathBuf, String>;

/// One `.tf` file of a module, parsed when it could be.
#[derive(Debug)]
pub struct ModuleFile {
    /// The text.
    pub source: SourceFile,
    /// The syntax tree; `None` when the file does not parse (the error is reported once).
    pub body: Option<Body>,
    /// Whether the user asked for this file to be checked and fixed.
    pub is_target: bool,
}

/// A parsed module.
#[derive(Debug)]
pub struct Module {
    /// The directory.
    pub dir: PathBuf,
    /// Its `.tf` files in path order.
    pub files: Vec<ModuleFile>,
    /// Every `(block type, first label, second label)` declared anywhere in the module,
    /// including files that do not parse (found by a line scan) and `*.tf.json` files.
    pub declared: BTreeSet<(String, String, String)>,
    /// `terraform.tfvars` then `*.auto.tfvars` (lexical order), parsed: they override
    /// variable defaults.
    pub tfvars: Vec<(PathBuf, Body)>,
    /// Per-file problems met while reading.
    pub errors: Vec<FileError>,
    /// Files of the module that could not be read at all (permissions, I/O): what they
    /// declare is unknown, so no fix of the module can be trusted.
    pub unreadable: Vec<PathBuf>,
}

/// A reference to a top-level block: file index and structure index in that file's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct BlockRef {
    /// Index into [`Module::files`].
    pub file: usize,
    /// Index into that file's body.
    pub index: usize,
}

impl Module {
    /// Reads and parses every file of `dir`.
    pub fn load(dir: &ModuleDir) -> Module {
        Module::load_with(dir, &Overlay::new())
    }

    /// Reads and parses every file of `dir`, taking the text of the files `overlay` names
    /// from it instead of the disk: an editor's unsaved buffers.
    pub fn load_with(dir: &ModuleDir, overlay: &Overlay) -> Module {
        let mut files = Vec::with_capacity(dir.files.len());
        let mut errors = Vec::new();
        let mut declared = BTreeSet::new();
        let mut unreadable = Vec::new();
        for path in &dir.files {
            let is_target = dir.targets.contains(path);
            let read = match overlay.get(path) {
                Some(text) => SourceFile::from_bytes(path, text.clone().into_bytes()),
                None => read_source(path),
            };
            let source = match read {
                Ok(source) => source,
                Err(error) => {
                    // Its declarations still count: generated labels must not collide.
                    match std::fs::read(path) {
                        Ok(bytes) => {
                            scan_declarations(&String::from_utf8_lossy(&bytes), &mut declared);
                            if is_target {
                                errors.push(error);
                            }
                        }
                        // Gone since the walk: it declares nothing any more.
                        Err(gone) if gone.kind() == std::io::ErrorKind::NotFound => {
                            if is_target {
                                errors.push(error);
                            }
                        }
                        Err(_) => {
                            unreadable.push(path.clone());
                            errors.push(error);
                        }
                    }
                    continue;
                }
            };
            let body = match parse_source(&source) {
                Ok(body) => Some(body),
                Err(error) => {
                    scan_declarations(&source.text, &mut declared);
                    if is_target {
                        errors.push(error);
                    }
                    None
                }
            };
            files.push(ModuleFile {
                source,
                body,
                is_target,
            });
        }
        for path in &dir.json_files {
            if let Ok(bytes) = std::fs::read(path) {
                scan_json_declarations(&bytes, &mut declared);
            }
        }
        let tfvars = load_tfvars(&dir.dir, &mut errors);
        let mut module = Module {
            dir: dir.dir.clone(),
            files,
            declared,
            tfvars,
            errors,
            unreadable,
        };
        module.index_declarations();
        module
    }

    /// Builds a module from in-memory sources (tests and re-checks of planned fixes).
    pub fn from_sources(dir: &Path, sources: Vec<SourceFile>) -> Module {
        let mut errors = Vec::new();
        let mut declared = BTreeSet::new();
        let files = sources
            .into_iter()
            .map(|source| {
                let body = match parse_source(&source) {
                    Ok(body) => Some(body),
                    Err(error) => {
                        scan_declarations(&source.text, &mut declared);
                        errors.push(error);
                        None
                    }
                };
                ModuleFile {
                    source,
                    body,
                    is_target: true,
                }
            })
            .collect();
        let mut module = Module {
            dir: dir.to_path_buf(),
            files,
            declared,
            tfvars: Vec::new(),
            errors,
            unreadable: Vec::new(),
        };
        module.index_declarations();
        module
    }

    /// This module with some files' text replaced: only those files are parsed again, the
    /// others keep their syntax trees (checking a fix must not cost a second parse of the
    /// whole module).
    pub fn with_texts(&self, changed: &std::collections::BTreeMap<usize, String>) -> Module {
        let mut errors = Vec::new();
        let mut declared = BTreeSet::new();
        let files = self
            .files
            .iter()
            .enumerate()
            .map(|(index, file)| match changed.get(&index) {
                None => ModuleFile {
                    source: file.source.clone(),
                    body: file.body.clone(),
                    is_target: file.is_target,
                },
                Some(text) => {
                    let source = SourceFile {
                        text: text.clone(),
                        ..file.source.clone()
                    };
                    let body = match parse_source(&source) {
                        Ok(body) => Some(body),
                        Err(error) => {
                            errors.push(error);
                            None
                        }
                    };
                    ModuleFile {
                        source,
                        body,
                        is_target: file.is_target,
                    }
                }
            })
            .collect();
        // Declarations of unreadable and JSON files carry over; parsed ones are re-indexed.
        for entry in &self.declared {
            declared.insert(entry.clone());
        }
        let mut module = Module {
            dir: self.dir.clone(),
            files,
            declared,
            tfvars: self.tfvars.clone(),
            errors,
            unreadable: self.unreadable.clone(),
        };
        module.index_declarations();
        module
    }

    fn index_declarations(&mut self) {
        for file in &self.files {
            let Some(body) = &file.body else { continue };
            for block in body.blocks() {
                let ident = block.ident.as_str();
                let first = block.labels.first().map(|l| l.as_str().to_owned());
                let second = block.labels.get(1).map(|l| l.as_str().to_owned());
                if let Some(first) = first {
                    self.declared
                        .insert((ident.to_owned(), first, second.unwrap_or_default()));
                }
            }
        }
    }

    /// Whether `block_type "first" "second"` is declared anywhere in the module.
    pub fn is_declared(&self, block_type: &str, first: &str, second: &str) -> bool {
        self.declared
            .contains(&(block_type.to_owned(), first.to_owned(), second.to_owned()))
    }

    /// The block a reference points at.
    pub fn block(&self, at: BlockRef) -> &Block {
        self.files[at.file]
            .body
            .as_ref()
            .and_then(|body| body.get(at.index))
            .and_then(|structure| structure.as_block())
            .expect("BlockRef points at a block")
    }

    /// Every top-level block with this identifier and these labels (`None` matches any label).
    pub fn find_blocks<'a>(
        &'a self,
        ident: &'a str,
        first: Option<&'a str>,
        second: Option<&'a str>,
    ) -> impl Iterator<Item = BlockRef> + 'a {
        self.files
            .iter()
            .enumerate()
            .flat_map(move |(file_index, file)| {
                file.body.iter().flat_map(move |body| {
                    body.iter()
                        .enumerate()
                        .filter_map(move |(index, structure)| {
                            let block = structure.as_block()?;
                            let matches = block.ident.as_str() == ident
                                && first.is_none_or(|f| {
                                    block.labels.first().map(|l| l.as_str()) == Some(f)
                                })
                                && second.is_none_or(|s| {
                                    block.labels.get(1).map(|l| l.as_str()) == Some(s)
                                });
                            matches.then_some(BlockRef {
                                file: file_index,
                                index,
                            })
                        })
                })
            })
    }

    /// The source text of an expression (or of any spanned node) in a file.
    pub fn text_of<'a>(&'a self, file: usize, node: &impl Span) -> Option<&'a str> {
        let text = &self.files.get(file)?.source.text;
        node.span().and_then(|range| text.get(range))
    }
}

/// Reads the tfvars files Terraform loads automatically for a root module.
fn load_tfvars(dir: &Path, errors: &mut Vec<FileError>) -> Vec<(PathBuf, Body)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut auto: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".auto.tfvars"))
        })
        .collect();
    auto.sort();
    let mut paths = vec![dir.join("terraform.tfvars")];
    paths.extend(auto);
    paths
        .into_iter()
        .filter(|p| p.is_file())
        .filter_map(|path| {
            let source = read_source(&path).map_err(|e| errors.push(e)).ok()?;
            let body = parse_source(&source).map_err(|e| errors.push(e)).ok()?;
            Some((path, body))
        })
        .collect()
}

/// The text of the `provider` meta-argument of a block, normalised (whitespace removed), or
/// `None` for the default provider.
///
/// The legacy quoted form (`provider = "aws.audit"`) is read as `aws.audit`, the form
/// Terraform accepts today and the one ctfix writes.
pub fn provider_of(source: &str, block: &Block) -> Option<String> {
    let attr = block.body.get_attribute("provider")?;
    let text = attr.value.span().and_then(|r| source.get(r))?;
    Some(
        text.chars()
            .filter(|c| !c.is_whitespace() && *c != '"')
            .collect(),
    )
}

/// Whether `label` can be used in a reference (`aws_kms_key.<label>.arn`): Terraform's
/// identifier rules. Block labels may be any string, but others cannot be referred to.
pub fn is_identifier(label: &str) -> bool {
    let mut chars = label.chars();
    chars.next().is_some_and(is_identifier_start) && chars.all(is_identifier_continue)
}

/// Whether `c` may start an HCL identifier: a Unicode `XID_Start` character or `_` (as
/// hcl-edit's parser reads them).
pub fn is_identifier_start(c: char) -> bool {
    c == '_' || unicode_ident::is_xid_start(c)
}

/// Whether `c` may continue an HCL identifier: `XID_Continue` or `-`.
pub fn is_identifier_continue(c: char) -> bool {
    c == '-' || unicode_ident::is_xid_continue(c)
}

/// Collects `resource "t" "n"` / `data "t" "n"` declarations from a file that does not parse,
/// line by line, so that generated labels never collide with them.
fn scan_declarations(text: &str, declared: &mut BTreeSet<(String, String, String)>) {
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some(keyword) = words.next() else {
            continue;
        };
        if keyword != "resource" && keyword != "data" {
            continue;
        }
        let label = |word: Option<&str>| {
            word.map(|w| w.trim_matches(|c| c == '"' || c == '{').to_owned())
                .filter(|w| !w.is_empty())
        };
        if let (Some(first), Some(second)) = (label(words.next()), label(words.next())) {
            declared.insert((keyword.to_owned(), first, second));
        }
    }
}

/// Collects resource and data declarations from a Terraform JSON file.
fn scan_json_declarations(bytes: &[u8], declared: &mut BTreeSet<(String, String, String)>) {
    let Ok(serde_json::Value::Object(root)) = serde_json::from_slice::<serde_json::Value>(bytes)
    else {
        return;
    };
    for keyword in ["resource", "data"] {
        let Some(serde_json::Value::Object(types)) = root.get(keyword) else {
            continue;
        };
        for (type_name, names) in types {
            let Some(names) = names.as_object() else {
                continue;
            };
            for name in names.keys() {
                declared.insert((keyword.to_owned(), type_name.clone(), name.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declarations_in_broken_files_are_seen() {
        let mut declared = BTreeSet::new();
        scan_declarations(
            "resource \"aws_kms_key\" \"a\" {\n  x = \ndata aws_partition p {\n",
            &mut declared,
        );
        assert!(declared.contains(&("resource".into(), "aws_kms_key".into(), "a".into())));
        assert!(declared.contains(&("data".into(), "aws_partition".into(), "p".into())));
    }

    #[test]
    fn declarations_in_json_files_are_seen() {
        let mut declared = BTreeSet::new();
        scan_json_declarations(
            br#"{"resource":{"aws_kms_key":{"k":{}}},"data":{"aws_caller_identity":{"me":{}}}}"#,
            &mut declared,
        );
        assert!(declared.contains(&("resource".into(), "aws_kms_key".into(), "k".into())));
        assert!(declared.contains(&("data".into(), "aws_caller_identity".into(), "me".into())));
    }
}
