//! A Terraform module (one directory) read and parsed as a whole: the context every decision
//! about a trail needs — which keys, data sources, variables and labels exist.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use hcl_edit::structure::{Block, Body};
use hcl_edit::Span;

use crate::discover::ModuleDir;
use crate::key_template::escape_string;
use crate::model::FileError;
use crate::parse::{parse_source, parse_text, read_source, SourceFile};
use crate::read::outline::{headers_of, outline, Header};

/// Text that stands in for files on disk, by path: the language server's open documents.
pub type Overlay = std::collections::BTreeMap<PathBuf, String>;

/// One `.tf` file of a module.
#[derive(Debug)]
pub struct ModuleFile {
    /// The text (shared with the module a fix is verified on).
    pub source: Arc<SourceFile>,
    /// Its syntax, as far as it was needed (shared likewise).
    parsed: Arc<Parsed>,
    /// Whether the user asked for this file to be checked and fixed.
    pub is_target: bool,
}

/// What ctfix knows of a file's syntax.
#[derive(Debug)]
enum Parsed {
    /// Parsed in full; `None` when it does not parse (the error is reported once).
    Whole(Option<Body>),
    /// Outlined ([`crate::read::outline`]): each block is parsed the first time it is read.
    Outlined(Outlined),
}

/// A file known by its outline, with the blocks parsed so far.
#[derive(Debug)]
struct Outlined {
    headers: Vec<Header>,
    /// Each block parsed on its own: `Some` when it parsed to exactly the outlined block.
    blocks: Vec<OnceLock<Option<Body>>>,
    /// The whole file parsed, once a block did not parse on its own.
    whole: OnceLock<Whole>,
    /// Bytes of text copied to parse blocks on their own so far.
    padded: AtomicUsize,
}

/// The whole parse of an outlined file.
#[derive(Debug)]
struct Whole {
    /// The syntax tree, when the file parses and its blocks are the outlined ones.
    body: Option<Body>,
    /// Why not.
    error: Option<FileError>,
    /// Whether the parser's blocks differ from the outline's: what the module declares is
    /// then not known for sure, and no fix of it is written.
    inconsistent: bool,
}

impl Outlined {
    fn new(text: &str) -> Option<Outlined> {
        let headers = outline(text)?;
        let blocks = headers.iter().map(|_| OnceLock::new()).collect();
        Some(Outlined {
            headers,
            blocks,
            whole: OnceLock::new(),
            padded: AtomicUsize::new(0),
        })
    }

    /// Block `index`, parsed on its own (or from the whole file when it does not parse on
    /// its own); `None` when it does not parse. A block once given stays given: a later
    /// failure elsewhere in the file does not take it back.
    fn block(&self, source: &SourceFile, index: usize) -> Option<&Block> {
        if let Some(Some(body)) = self.blocks.get(index)?.get() {
            return first_block(body);
        }
        if let Some(whole) = self.whole.get().filter(|w| w.body.is_some()) {
            return whole_block(whole, index);
        }
        let header = &self.headers[index];
        // Each block is parsed from a copy of the text up to its end: past a budget, one
        // parse of the whole file costs less (a large file whose many blocks are read).
        let padded = self.padded.fetch_add(header.span.end, Ordering::Relaxed);
        if self.whole.get().is_none() && padded > 4 * source.text.len() + (64 << 10) {
            let whole = self.parse_whole(source);
            if whole.body.is_some() {
                return whole_block(whole, index);
            }
        }
        match self.blocks[index].get_or_init(|| parse_alone(source, header)) {
            Some(body) => first_block(body),
            None => whole_block(self.parse_whole(source), index),
        }
    }

    fn parse_whole(&self, source: &SourceFile) -> &Whole {
        self.whole.get_or_init(|| match parse_source(source) {
            Err(error) => Whole {
                body: None,
                error: Some(error),
                inconsistent: false,
            },
            Ok(body) => {
                if headers_of(&body).as_deref() == Some(self.headers.as_slice()) {
                    Whole {
                        body: Some(body),
                        error: None,
                        inconsistent: false,
                    }
                } else {
                    Whole {
                        body: None,
                        error: Some(FileError::new(
                            &source.path,
                            "internal error: ctfix read this file's blocks two ways and got different answers, so it fixes nothing in this module (please report this)",
                        )),
                        inconsistent: true,
                    }
                }
            }
        })
    }
}

fn first_block(body: &Body) -> Option<&Block> {
    body.get(0)?.as_block()
}

fn whole_block(whole: &Whole, index: usize) -> Option<&Block> {
    whole.body.as_ref()?.get(index)?.as_block()
}

/// The outlined block parsed on its own: the text before it blanked (its lines and byte
/// offsets kept, so spans and positions are the file's), the text after it left out. `None`
/// unless the parser finds exactly that block there.
fn parse_alone(source: &SourceFile, header: &Header) -> Option<Body> {
    let text = &source.text;
    let start = header.span.start;
    let before = &text.as_bytes()[..start];
    let newlines = memchr::memchr_iter(b'\n', before).count();
    let column = before.len() - memchr::memrchr(b'\n', before).map_or(0, |n| n + 1);
    let mut alone = String::with_capacity(header.span.end);
    alone.extend(std::iter::repeat_n(' ', start - newlines - column));
    alone.extend(std::iter::repeat_n('\n', newlines));
    alone.extend(std::iter::repeat_n(' ', column));
    alone.push_str(text.get(header.span.clone())?);
    let body = parse_text(&source.path, &alone).ok()?;
    let parsed = headers_of(&body)?;
    (parsed.as_slice() == std::slice::from_ref(header)).then_some(body)
}

impl ModuleFile {
    /// Reads `source` as ctfix does: in full when it holds a trail, when `whole` asks for it
    /// (a file open in the editor, whose syntax errors the language server shows) or when it
    /// cannot be outlined.
    fn new(
        source: SourceFile,
        is_target: bool,
        whole: bool,
        errors: &mut Vec<FileError>,
        declared: &mut Declared,
    ) -> ModuleFile {
        let outlined = (!whole
            && memchr::memmem::find(source.text.as_bytes(), crate::TRAIL_MARKER).is_none())
        .then(|| Outlined::new(&source.text))
        .flatten();
        let parsed = match outlined {
            Some(outlined) => Parsed::Outlined(outlined),
            None => Parsed::Whole(match parse_source(&source) {
                Ok(body) => Some(body),
                Err(error) => {
                    scan_declarations(&source.text, declared);
                    if is_target {
                        errors.push(error);
                    }
                    None
                }
            }),
        };
        ModuleFile {
            source: Arc::new(source),
            parsed: Arc::new(parsed),
            is_target,
        }
    }

    /// The same text parsed in full (a fixed file, which is verified whole).
    fn whole(source: SourceFile, is_target: bool, errors: &mut Vec<FileError>) -> ModuleFile {
        let body = match parse_source(&source) {
            Ok(body) => Some(body),
            Err(error) => {
                errors.push(error);
                None
            }
        };
        ModuleFile {
            source: Arc::new(source),
            parsed: Arc::new(Parsed::Whole(body)),
            is_target,
        }
    }

    /// Top-level block `index`, when it parses.
    fn block(&self, index: usize) -> Option<&Block> {
        match &*self.parsed {
            Parsed::Whole(body) => body.as_ref()?.get(index)?.as_block(),
            Parsed::Outlined(outlined) => outlined.block(&self.source, index),
        }
    }

    /// The parse error or inconsistency found while reading blocks on demand.
    fn late_error(&self) -> Option<&Whole> {
        match &*self.parsed {
            Parsed::Whole(_) => None,
            Parsed::Outlined(outlined) => outlined.whole.get().filter(|w| w.error.is_some()),
        }
    }
}

/// `(block type, first label, second label)` of every declaration.
type Declared = BTreeSet<(String, String, String)>;

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
    /// `terraform.tfvars`, `terraform.tfvars.json`, then `*.auto.tfvars(.json)` (lexical
    /// order), parsed: they override variable defaults.
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
            files.push(ModuleFile::new(
                source,
                is_target,
                overlay.contains_key(path),
                &mut errors,
                &mut declared,
            ));
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
        module.index_declarations(|_| true);
        module
    }

    /// Builds a module from in-memory sources (tests and re-checks of planned fixes).
    pub fn from_sources(dir: &Path, sources: Vec<SourceFile>) -> Module {
        let mut errors = Vec::new();
        let mut declared = BTreeSet::new();
        let files = sources
            .into_iter()
            .map(|source| {
                let file = ModuleFile::whole(source, true, &mut errors);
                if matches!(*file.parsed, Parsed::Whole(None)) {
                    scan_declarations(&file.source.text, &mut declared);
                }
                file
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
        module.index_declarations(|_| true);
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
                    source: Arc::clone(&file.source),
                    parsed: Arc::clone(&file.parsed),
                    is_target: file.is_target,
                },
                Some(text) => ModuleFile::whole(
                    SourceFile {
                        text: text.clone(),
                        ..(*file.source).clone()
                    },
                    file.is_target,
                    &mut errors,
                ),
            })
            .collect();
        // What the module declared carries over (a fix only adds); the changed files are
        // indexed again below.
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
        module.index_declarations(|index| changed.contains_key(&index));
        module
    }

    /// Adds the declarations of the files `which` selects (by index) to [`Module::declared`].
    fn index_declarations(&mut self, which: impl Fn(usize) -> bool) {
        let mut add = |ident: &str, labels: &mut dyn Iterator<Item = &str>| {
            if let Some(first) = labels.next() {
                let second = labels.next().unwrap_or_default();
                self.declared
                    .insert((ident.to_owned(), first.to_owned(), second.to_owned()));
            }
        };
        for (_, file) in self.files.iter().enumerate().filter(|(i, _)| which(*i)) {
            match &*file.parsed {
                Parsed::Whole(None) => {}
                Parsed::Whole(Some(body)) => {
                    for block in body.blocks() {
                        add(
                            block.ident.as_str(),
                            &mut block.labels.iter().map(|l| l.as_str()),
                        );
                    }
                }
                Parsed::Outlined(outlined) => {
                    for header in &outlined.headers {
                        add(&header.ident, &mut header.labels.iter().map(String::as_str));
                    }
                }
            }
        }
    }

    /// Parse errors found while reading blocks on demand (after [`Module::errors`], which
    /// holds those found when the module was read), for the target files.
    pub fn late_errors(&self) -> Vec<FileError> {
        self.files
            .iter()
            .filter_map(|file| {
                let whole = file.late_error()?;
                (file.is_target || whole.inconsistent).then(|| whole.error.clone())?
            })
            .collect()
    }

    /// Files whose declarations are not known for sure: unreadable ones, and any whose
    /// blocks the parser and the outline disagree on. No fix of the module can be trusted.
    pub fn uncertain(&self) -> Vec<PathBuf> {
        let mut out = self.unreadable.clone();
        out.extend(
            self.files
                .iter()
                .filter(|f| f.late_error().is_some_and(|w| w.inconsistent))
                .map(|f| f.source.path.clone()),
        );
        out
    }

    /// Whether `block_type "first" "second"` is declared anywhere in the module.
    pub fn is_declared(&self, block_type: &str, first: &str, second: &str) -> bool {
        self.declared
            .contains(&(block_type.to_owned(), first.to_owned(), second.to_owned()))
    }

    /// The block a reference points at ([`Module::find_blocks`] yields only blocks that
    /// parse).
    pub fn block(&self, at: BlockRef) -> &Block {
        self.files[at.file]
            .block(at.index)
            .expect("BlockRef points at a block")
    }

    /// Every top-level block with this identifier and these labels (`None` matches any label)
    /// that parses. Outlined files are matched by their outline and only the matching blocks
    /// parsed.
    pub fn find_blocks<'a>(
        &'a self,
        ident: &'a str,
        first: Option<&'a str>,
        second: Option<&'a str>,
    ) -> impl Iterator<Item = BlockRef> + 'a {
        let matches = move |block_ident: &str, label0: Option<&str>, label1: Option<&str>| {
            block_ident == ident
                && first.is_none_or(|f| label0 == Some(f))
                && second.is_none_or(|s| label1 == Some(s))
        };
        self.files
            .iter()
            .enumerate()
            .flat_map(move |(file_index, file)| {
                let candidates: Vec<usize> = match &*file.parsed {
                    Parsed::Whole(None) => Vec::new(),
                    Parsed::Whole(Some(body)) => body
                        .iter()
                        .enumerate()
                        .filter_map(|(index, structure)| {
                            let block = structure.as_block()?;
                            let label = |i: usize| block.labels.get(i).map(|l| l.as_str());
                            matches(block.ident.as_str(), label(0), label(1)).then_some(index)
                        })
                        .collect(),
                    Parsed::Outlined(outlined) => outlined
                        .headers
                        .iter()
                        .enumerate()
                        .filter(|(_, h)| {
                            let label = |i: usize| h.labels.get(i).map(String::as_str);
                            matches(&h.ident, label(0), label(1))
                        })
                        .map(|(index, _)| index)
                        .collect(),
                };
                candidates
                    .into_iter()
                    .filter(move |&index| file.block(index).is_some())
                    .map(move |index| BlockRef {
                        file: file_index,
                        index,
                    })
            })
    }

    /// The source text of an expression (or of any spanned node) in a file.
    pub fn text_of<'a>(&'a self, file: usize, node: &impl Span) -> Option<&'a str> {
        let text = &self.files.get(file)?.source.text;
        node.span().and_then(|range| text.get(range))
    }
}

/// Reads the variable definitions files Terraform loads automatically for a root module, in
/// its order: `terraform.tfvars`, `terraform.tfvars.json`, then `*.auto.tfvars` and
/// `*.auto.tfvars.json` in lexical order of their names. Later files win.
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
                .is_some_and(|n| n.ends_with(".auto.tfvars") || n.ends_with(".auto.tfvars.json"))
        })
        .collect();
    auto.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    let mut paths = vec![
        dir.join("terraform.tfvars"),
        dir.join("terraform.tfvars.json"),
    ];
    paths.extend(auto);
    paths
        .into_iter()
        .filter(|p| p.is_file())
        .filter_map(|path| {
            let body = if path.extension().is_some_and(|e| e == "json") {
                tfvars_json(&path)
            } else {
                read_source(&path).and_then(|source| parse_source(&source))
            };
            let body = body.map_err(|e| errors.push(e)).ok()?;
            Some((path, body))
        })
        .collect()
}

/// A `*.tfvars.json` file as the HCL body it stands for: each of its object's members an
/// attribute whose value is the JSON value as a literal (strings are not templates there).
fn tfvars_json(path: &Path) -> Result<Body, FileError> {
    let bytes = std::fs::read(path)
        .map_err(|error| FileError::new(path, format!("cannot read file: {error}")))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|error| {
        FileError::at(
            path,
            error.line(),
            error.column(),
            format!("cannot parse JSON: {error}; ctfix ignores this variable definitions file"),
        )
    })?;
    let Some(members) = value.as_object() else {
        return Err(FileError::new(
            path,
            "a variable definitions file in JSON holds one object; ctfix ignores this one",
        ));
    };
    let mut text = String::new();
    for (name, value) in members.iter().filter(|(name, _)| is_identifier(name)) {
        text.push_str(name);
        text.push_str(" = ");
        hcl_literal(value, &mut text);
        text.push('\n');
    }
    parse_text(path, &text)
}

/// `value` written as an HCL literal expression.
fn hcl_literal(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => out.push_str(&value.to_string()),
        Value::String(s) => out.push_str(&format!("\"{}\"", escape_string(s))),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                hcl_literal(item, out);
            }
            out.push(']');
        }
        Value::Object(members) => {
            out.push('{');
            for (i, (key, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&format!("\"{}\"", escape_string(key)));
                out.push_str(" = ");
                hcl_literal(item, out);
            }
            out.push('}');
        }
    }
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

    fn module_of(files: &[(&str, &str)]) -> (tempfile::TempDir, Module) {
        let tmp = tempfile::tempdir().unwrap();
        let mut dir = ModuleDir {
            dir: tmp.path().to_path_buf(),
            ..ModuleDir::default()
        };
        for (name, text) in files {
            let path = tmp.path().join(name);
            std::fs::write(&path, text).unwrap();
            dir.files.push(path.clone());
            dir.targets.insert(path);
        }
        let module = Module::load(&dir);
        (tmp, module)
    }

    const TRAIL: &str =
        "resource \"aws_cloudtrail\" \"t\" {\n  kms_key_id = aws_kms_key.k.arn\n}\n";

    #[test]
    fn files_without_a_trail_are_outlined_and_parsed_block_by_block() {
        let (_tmp, module) = module_of(&[
            ("a.tf", TRAIL),
            (
                "b.tf",
                "resource \"aws_s3_bucket\" \"b\" {\n  bucket = \"x\"\n}\n\nresource \"aws_kms_key\" \"k\" {\n  description = \"k\"\n}\n",
            ),
        ]);
        assert!(matches!(*module.files[0].parsed, Parsed::Whole(Some(_))));
        let Parsed::Outlined(outlined) = &*module.files[1].parsed else {
            panic!("b.tf is outlined");
        };
        assert!(module.is_declared("resource", "aws_s3_bucket", "b"));
        let key = module
            .find_blocks("resource", Some("aws_kms_key"), Some("k"))
            .next()
            .unwrap();
        assert_eq!(key, BlockRef { file: 1, index: 1 });
        // Only the block read was parsed, and its spans are the file's.
        assert!(outlined.blocks[0].get().is_none());
        let attr = module.block(key).body.get_attribute("description").unwrap();
        assert_eq!(module.text_of(1, &attr.value), Some("\"k\""));
        assert!(module.late_errors().is_empty());
        assert!(module.uncertain().is_empty());
    }

    #[test]
    fn a_syntax_error_in_a_block_read_is_reported_with_its_line() {
        let (_tmp, module) = module_of(&[
            ("a.tf", TRAIL),
            (
                "b.tf",
                "resource \"aws_s3_bucket\" \"b\" {}\n\nresource \"aws_kms_key\" \"k\" {\n  description = \n}\n",
            ),
        ]);
        assert_eq!(
            module
                .find_blocks("resource", Some("aws_kms_key"), None)
                .count(),
            0,
            "a block that does not parse is not used"
        );
        let errors = module.late_errors();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].path.ends_with("b.tf"));
        assert_eq!(errors[0].line, Some(4), "{:?}", errors[0]);
        assert!(module.uncertain().is_empty());
    }

    #[test]
    fn a_block_given_stays_given_when_a_later_one_breaks_the_file() {
        let (_tmp, module) = module_of(&[
            ("a.tf", TRAIL),
            (
                "b.tf",
                "resource \"aws_kms_key\" \"k\" {}\n\nresource \"aws_kms_key\" \"j\" {\n  description = \n}\n",
            ),
        ]);
        let k = module
            .find_blocks("resource", Some("aws_kms_key"), Some("k"))
            .next()
            .expect("k parses on its own");
        assert_eq!(
            module
                .find_blocks("resource", Some("aws_kms_key"), Some("j"))
                .count(),
            0
        );
        assert_eq!(module.late_errors().len(), 1);
        assert_eq!(module.block(k).labels[1].as_str(), "k");
    }

    #[test]
    fn reading_most_blocks_of_a_large_file_parses_it_whole_once() {
        let text: String = (0..400)
            .map(|i| format!("variable \"v{i}\" {{\n  default = {i}\n}}\n\n"))
            .collect();
        let (_tmp, module) = module_of(&[("a.tf", TRAIL), ("b.tf", &text)]);
        let found: Vec<BlockRef> = module.find_blocks("variable", None, None).collect();
        assert_eq!(found.len(), 400);
        let Parsed::Outlined(outlined) = &*module.files[1].parsed else {
            panic!("b.tf is outlined");
        };
        assert!(outlined.whole.get().is_some_and(|w| w.body.is_some()));
        let alone = outlined.blocks.iter().filter(|b| b.get().is_some()).count();
        assert!(alone < 100, "{alone} blocks parsed on their own");
        for (i, at) in found.iter().enumerate() {
            let attr = module.block(*at).body.get_attribute("default").unwrap();
            assert_eq!(module.text_of(1, &attr.value), Some(i.to_string().as_str()));
        }
    }

    #[test]
    fn an_outline_the_parser_disagrees_with_makes_the_module_uncertain() {
        let source = SourceFile::from_bytes("x.tf", b"locals {\n  a = 1\n}\n".to_vec()).unwrap();
        let outlined = Outlined {
            headers: vec![Header {
                ident: "locals".into(),
                labels: vec!["wrong".into()],
                span: 0..19,
            }],
            blocks: vec![OnceLock::new()],
            whole: OnceLock::new(),
            padded: AtomicUsize::new(0),
        };
        assert!(outlined.block(&source, 0).is_none());
        let whole = outlined.whole.get().expect("the whole file was parsed");
        assert!(whole.inconsistent && whole.body.is_none());
    }

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
