//! Module calls: a trail in a module that other modules call is judged once per instance,
//! with the arguments of the `module` blocks that reach it, and fixed at the call site.
//!
//! The walk notes every directory whose files mention both `module` and `source` (a byte
//! search; trees without module calls pay nothing more). Those directories are parsed, their
//! `module` blocks resolved — local sources by path, other sources through the root's
//! `.terraform/modules/modules.json` — and the call graph walked from the modules nothing
//! calls (the roots). A directory some call reaches is judged through its callers only.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};

use hcl_edit::expr::{Expression, TraversalOperator};
use hcl_edit::structure::Block;
use hcl_edit::Span;

use crate::analyze::{self, Trail};
use crate::discover::{file_kind, FileKind, ModuleDir};
use crate::fix::{CallSiteKey, FixPlanner};
use crate::key_check::{check_key, KeyVerdict};
use crate::key_template::TrailName;
use crate::model::{
    Applicability, CallSite, Edit, FileChange, FileError, Finding, Fix, FixSummary, Report, Status,
    RULE_ID,
};
use crate::module::{BlockRef, Module};
use crate::resolve::{Resolver, Value};
use crate::suppress::{find_suppression, today};
use crate::Settings;

/// How deep calls may nest before ctfix stops following them (Terraform has no limit; real
/// trees rarely pass 4).
const MAX_DEPTH: usize = 16;

/// Arguments of a `module` block that are not the called module's variables.
const META_ARGUMENTS: [&str; 6] = [
    "source",
    "version",
    "count",
    "for_each",
    "providers",
    "depends_on",
];

/// How a key the caller passes and ctfix verified there is described.
const VERIFIED_IN_CALLER: &str = ", whose policy lets CloudTrail use it";

/// What the byte search of one directory found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// A file mentions `aws_cloudtrail`.
    pub trail: bool,
    /// A file mentions both `module` and `source`: it may call modules.
    pub calls: bool,
    /// The values of `source = "…"` lines in those files (module sources, and provider
    /// sources, which lead nowhere), read without parsing.
    pub sources: Vec<String>,
}

impl Scan {
    /// Adds one file's bytes to the scan.
    pub fn add(&mut self, bytes: &[u8], trail: bool) {
        self.trail |= trail;
        if may_call_modules(bytes) {
            self.calls = true;
            for source in sources_in(bytes) {
                if !self.sources.contains(&source) {
                    self.sources.push(source);
                }
            }
        }
    }
}

/// The quoted values of lines `source = "…"` (found by a byte search; no parse).
fn sources_in(bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for at in memchr::memmem::find_iter(bytes, b"source") {
        let line_start = memchr::memrchr(b'\n', &bytes[..at]).map_or(0, |i| i + 1);
        if !bytes[line_start..at]
            .iter()
            .all(|b| *b == b' ' || *b == b'\t')
        {
            continue;
        }
        let rest = &bytes[at + b"source".len()..];
        let rest = trim_blank(rest);
        let Some(rest) = rest.strip_prefix(b"=") else {
            continue;
        };
        let Some(rest) = trim_blank(rest).strip_prefix(b"\"") else {
            continue;
        };
        if let Some(end) = memchr::memchr2(b'"', b'\n', rest) {
            if rest[end] == b'"' {
                out.push(String::from_utf8_lossy(&rest[..end]).into_owned());
            }
        }
    }
    out
}

fn trim_blank(bytes: &[u8]) -> &[u8] {
    let skip = bytes
        .iter()
        .take_while(|b| **b == b' ' || **b == b'\t')
        .count();
    &bytes[skip..]
}

/// Whether a directory that modules call is also applied on its own (it holds tfvars, which
/// only a root reads, or has been initialised): then it is judged as a root too.
pub fn applied_on_its_own(dir: &Path) -> bool {
    if dir.join("terraform.tfvars").is_file()
        || dir.join("terraform.tfvars.json").is_file()
        || dir.join(".terraform").is_dir()
    {
        return true;
    }
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|entry| {
            entry.file_name().to_str().is_some_and(|name| {
                name.ends_with(".auto.tfvars") || name.ends_with(".auto.tfvars.json")
            })
        })
    })
}

/// Whether `bytes` may hold a `module` block (`module` and `source` both appear).
pub fn may_call_modules(bytes: &[u8]) -> bool {
    memchr::memmem::find(bytes, b"module").is_some()
        && memchr::memmem::find(bytes, b"source").is_some()
}

/// What following the calls found.
#[derive(Debug, Default)]
pub struct Followed {
    /// Directories (canonical) that some scanned module calls: their own findings as roots
    /// are replaced by the per-instance ones.
    pub called: BTreeSet<PathBuf>,
    /// Findings per instance, call-site changes and errors.
    pub report: Report,
}

/// A `module` block of a loaded module and where it leads.
#[derive(Debug, Clone)]
struct Call {
    block: BlockRef,
    name: String,
    source: String,
}

#[derive(Debug, Clone)]
enum Target {
    /// A directory to follow (canonical key into the arena).
    Dir(PathBuf),
    /// A registry or git source that is not downloaded.
    NotDownloaded,
    /// Nothing ctfix follows (a missing local directory).
    Ignored,
}

/// The modules involved, loaded once each, keyed by canonical directory.
struct Arena {
    modules: HashMap<PathBuf, Module>,
    /// Each module's calls, per root context (the modules.json key prefix matters only for
    /// non-local sources, so calls are resolved at walk time, not stored here).
    json: HashMap<PathBuf, Option<BTreeMap<String, PathBuf>>>,
}

/// One frame of a path from a root to a trail.
#[derive(Debug, Clone)]
struct Frame {
    /// Canonical directory of the module holding the `module` block.
    caller: PathBuf,
    call: Call,
    /// `["eu"]`, `[0]` or empty.
    key: String,
    /// `count` / `for_each` when its instances are not known (one verdict for all).
    meta: Option<&'static str>,
}

/// One trail instance reached through calls.
struct Instance {
    frames: Vec<Frame>,
    /// Canonical directory of the trail's module.
    dir: PathBuf,
    trail: Trail,
    verdict: analyze::Verdict,
    /// The trail's name as this instance's arguments make it.
    name: Option<String>,
}

/// Follows the calls of `candidates` (directories whose files may hold `module` blocks) and
/// judges every trail instance they reach. `trail_dirs` are the directories the walk found
/// mentioning `aws_cloudtrail`: only candidates whose calls can lead to a trail are parsed.
pub fn follow(
    candidates: Vec<(ModuleDir, Vec<String>)>,
    trail_dirs: &[PathBuf],
    settings: &Settings,
) -> Followed {
    let mut arena = Arena {
        modules: HashMap::new(),
        json: HashMap::new(),
    };
    let mut filter = Relevance::new(candidates, trail_dirs);
    let keys: Vec<PathBuf> = filter.candidates.keys().cloned().collect();
    let mut relevant: Vec<PathBuf> = keys
        .into_iter()
        .filter(|key| filter.relevant(key, 0))
        .collect();
    relevant.sort();
    for key in &relevant {
        if let Some((dir, _)) = filter.candidates.get(key) {
            arena.modules.insert(key.clone(), Module::load(dir));
        }
    }
    // Roots: relevant candidates no local call of another reaches.
    let mut called = BTreeSet::new();
    for key in &relevant {
        for call in local_calls(&arena.modules[key]) {
            called.insert(call);
        }
    }
    let roots: Vec<PathBuf> = relevant
        .iter()
        .filter(|k| !called.contains(*k))
        .cloned()
        .collect();
    let mut followed = Followed::default();
    // Load everything reachable first (the judging below borrows the arena).
    for root in &roots {
        load_reachable(&mut arena, root, root, &mut Vec::new(), 0);
    }
    let view: HashMap<PathBuf, &Module> =
        arena.modules.iter().map(|(k, m)| (k.clone(), m)).collect();
    let mut instances = Vec::new();
    let mut not_downloaded = Vec::new();
    for root in &roots {
        let module = view[root];
        let resolver = Resolver::new(module);
        walk_calls(
            &view,
            arena.json.get(root).and_then(Option::as_ref),
            root,
            root,
            &resolver,
            &mut Vec::new(),
            &mut Vec::new(),
            &mut instances,
            &mut not_downloaded,
            &mut followed.called,
        );
    }
    plan(
        &view,
        &arena.json,
        &roots,
        instances,
        settings,
        &mut followed.report,
    );
    followed.report.findings.extend(not_downloaded);
    followed.report.sort();
    followed
}

/// Decides cheaply which candidate callers can reach a trail, from the `source` lines of
/// their files (no parse): a local call to a directory holding `aws_cloudtrail` or to another
/// such caller, or a registry call when a downloaded module holds a trail or the source
/// names `cloudtrail`.
struct Relevance {
    /// Candidate callers by canonical directory, with the sources their files name.
    candidates: BTreeMap<PathBuf, (ModuleDir, Vec<String>)>,
    trails: BTreeSet<PathBuf>,
    /// Decided directories (`false` while being decided: cycles are not relevant).
    memo: HashMap<PathBuf, bool>,
    /// Some root's `.terraform/modules` holds a trail.
    downloaded_trail: bool,
}

impl Relevance {
    fn new(candidates: Vec<(ModuleDir, Vec<String>)>, trail_dirs: &[PathBuf]) -> Self {
        let trails: BTreeSet<PathBuf> = trail_dirs.iter().map(|d| canonical(d)).collect();
        let mut downloaded_trail = false;
        let candidates: BTreeMap<PathBuf, (ModuleDir, Vec<String>)> = candidates
            .into_iter()
            .map(|(dir, sources)| {
                downloaded_trail = downloaded_trail
                    || (dir.dot_terraform != Some(false) && downloaded_holds_trail(&dir.dir));
                (canonical(&dir.dir), (dir, sources))
            })
            .collect();
        Relevance {
            candidates,
            trails,
            memo: HashMap::new(),
            downloaded_trail,
        }
    }

    fn relevant(&mut self, key: &Path, depth: usize) -> bool {
        if let Some(&known) = self.memo.get(key) {
            return known;
        }
        if depth > MAX_DEPTH {
            return false;
        }
        self.memo.insert(key.to_path_buf(), false);
        let Some((dir, sources)) = self.candidates.get(key).cloned() else {
            return false;
        };
        let mut found = false;
        for source in sources {
            found = if is_local(&source) {
                let target = canonical(&dir.dir.join(&source));
                if self.trails.contains(&target) {
                    true
                } else {
                    if !self.candidates.contains_key(&target) && !self.memo.contains_key(&target) {
                        // Outside the walk, or walked without a trail or a call: look.
                        match list_dir(&normalize(&dir.dir.join(&source))) {
                            Some(listed) => {
                                let scan = scan_files(&listed.files);
                                if scan.trail {
                                    self.trails.insert(target.clone());
                                } else if scan.calls {
                                    let sources = quick_sources(&listed.files);
                                    self.candidates.insert(target.clone(), (listed, sources));
                                }
                            }
                            None => {
                                self.memo.insert(target.clone(), false);
                            }
                        }
                    }
                    self.trails.contains(&target) || self.relevant(&target, depth + 1)
                }
            } else {
                self.downloaded_trail || source.to_ascii_lowercase().contains("cloudtrail")
            };
            if found {
                break;
            }
        }
        self.memo.insert(key.to_path_buf(), found);
        found
    }
}

/// The byte searches of [`Scan`] over some files (a file that cannot be read counts as
/// holding a trail, so that loading it reports the error).
fn scan_files(files: &[PathBuf]) -> Scan {
    let mut scan = Scan::default();
    for path in files {
        match std::fs::read(path) {
            Ok(bytes) => {
                let trail = memchr::memmem::find(&bytes, crate::TRAIL_MARKER).is_some();
                scan.add(&bytes, trail);
            }
            Err(_) => scan.trail = true,
        }
    }
    scan
}

/// The module sources named in these files (see [`Scan::sources`]).
fn quick_sources(files: &[PathBuf]) -> Vec<String> {
    let mut scan = Scan::default();
    for path in files {
        if let Ok(bytes) = std::fs::read(path) {
            scan.add(&bytes, false);
        }
    }
    scan.sources
}

/// Whether `.terraform/modules/` of a root holds a downloaded module mentioning
/// `aws_cloudtrail`.
fn downloaded_holds_trail(root: &Path) -> bool {
    read_modules_json(root).is_some_and(|modules| {
        modules.values().any(|dir| {
            under_dot_terraform(dir)
                && list_dir(dir).is_some_and(|listed| scan_files(&listed.files).trail)
        })
    })
}

/// The canonical form of a directory, for comparing spellings: absolute, with `.` and `..`
/// resolved lexically, as Terraform joins a module's directory and a local `source`
/// (`filepath.Join`). No system call but one `getcwd` per run: resolving every spelling with
/// `realpath` cost a `readlink` per path component and doubled the time of a check on trees
/// with many module calls.
pub fn canonical(dir: &Path) -> PathBuf {
    static CWD: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    if dir.is_absolute() {
        return normalize(dir);
    }
    match CWD.get_or_init(|| std::env::current_dir().ok()) {
        Some(cwd) => normalize(&cwd.join(dir)),
        None => normalize(dir),
    }
}

/// `a/b/../c` → `a/c` without touching the disk (a leading `./` is kept).
fn normalize(path: &Path) -> PathBuf {
    let mut out: Vec<Component> = Vec::new();
    for component in path.components() {
        match component {
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            Component::CurDir if !out.is_empty() => {}
            other => out.push(other),
        }
    }
    if out.is_empty() {
        return PathBuf::from(".");
    }
    out.iter().collect()
}

fn is_local(source: &str) -> bool {
    source.starts_with("./") || source.starts_with("../")
}

/// Whether a directory is (inside) `.terraform/`: never edited.
fn under_dot_terraform(path: &Path) -> bool {
    path.components()
        .any(|c| c.as_os_str() == std::ffi::OsStr::new(".terraform"))
}

/// The `module` blocks of a module with their literal `source`.
fn module_blocks(module: &Module) -> Vec<(BlockRef, String, String)> {
    module
        .find_blocks("module", None, None)
        .filter_map(|at| {
            let block = module.block(at);
            let name = block.labels.first()?.as_str().to_owned();
            let source = match &block.body.get_attribute("source")?.value {
                Expression::String(s) => s.value().to_string(),
                _ => return None,
            };
            Some((at, name, source))
        })
        .collect()
}

/// Canonical directories a module's local calls reach.
fn local_calls(module: &Module) -> Vec<PathBuf> {
    module_blocks(module)
        .into_iter()
        .filter(|(_, _, source)| is_local(source))
        .map(|(_, _, source)| canonical(&module.dir.join(source)))
        .collect()
}

/// `.terraform/modules/modules.json` of a root: module key → directory.
fn read_modules_json(root: &Path) -> Option<BTreeMap<String, PathBuf>> {
    let bytes = std::fs::read(root.join(".terraform/modules/modules.json")).ok()?;
    let json: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let mut out = BTreeMap::new();
    for entry in json["Modules"].as_array()? {
        let (Some(key), Some(dir)) = (entry["Key"].as_str(), entry["Dir"].as_str()) else {
            continue;
        };
        if !key.is_empty() {
            out.insert(key.to_owned(), normalize(&root.join(dir)));
        }
    }
    Some(out)
}

/// Where one call leads, given the root's modules.json and the call's key path.
fn resolve_call(
    module: &Module,
    source: &str,
    json: Option<&BTreeMap<String, PathBuf>>,
    key_path: &str,
) -> (Target, PathBuf) {
    if is_local(source) {
        let dir = normalize(&module.dir.join(source));
        return if dir.is_dir() {
            (Target::Dir(canonical(&dir)), dir)
        } else {
            (Target::Ignored, dir)
        };
    }
    match json.and_then(|json| json.get(key_path)) {
        Some(dir) if dir.is_dir() => (Target::Dir(canonical(dir)), dir.clone()),
        _ => (Target::NotDownloaded, PathBuf::new()),
    }
}

/// Lists a directory's Terraform files as a module to load (every file a target).
fn list_dir(dir: &Path) -> Option<ModuleDir> {
    let mut found = ModuleDir {
        dir: dir.to_path_buf(),
        ..ModuleDir::default()
    };
    for entry in std::fs::read_dir(dir).ok()? {
        let path = dir.join(entry.ok()?.file_name());
        if !path.is_file() {
            continue;
        }
        match file_kind(&path) {
            Some(FileKind::Native) => found.files.push(path.clone()),
            Some(FileKind::Json) => found.json_files.push(path.clone()),
            None => continue,
        }
        found.targets.insert(path);
    }
    found.files.sort();
    found.json_files.sort();
    Some(found)
}

/// Loads every module reachable from `key` (cycles and depth bounded).
fn load_reachable(
    arena: &mut Arena,
    root: &Path,
    key: &Path,
    prefix: &mut Vec<String>,
    depth: usize,
) {
    if depth > MAX_DEPTH {
        return;
    }
    if !arena.json.contains_key(root) {
        let json = read_modules_json(&arena.modules[root].dir);
        arena.json.insert(root.to_path_buf(), json);
    }
    let calls: Vec<(String, Target, PathBuf)> = {
        let module = &arena.modules[key];
        let json = arena.json[root].as_ref();
        module_blocks(module)
            .into_iter()
            .map(|(_, name, source)| {
                let key_path = prefix
                    .iter()
                    .chain([&name])
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(".");
                let (target, dir) = resolve_call(module, &source, json, &key_path);
                (name, target, dir)
            })
            .collect()
    };
    for (name, target, dir) in calls {
        let Target::Dir(child) = target else { continue };
        if child == key {
            continue;
        }
        if !arena.modules.contains_key(&child) {
            let Some(listed) = list_dir(&dir) else {
                continue;
            };
            // Its parse errors are reported by the walk when it holds a trail.
            arena.modules.insert(child.clone(), Module::load(&listed));
        }
        prefix.push(name);
        load_reachable(arena, root, &child, prefix, depth + 1);
        prefix.pop();
    }
}

/// The instances of a `module` block: `(key, meta, bindings)`; one entry with `meta` when
/// `count` / `for_each` is not known, none when it is zero.
fn instances_of(
    module: &Module,
    resolver: &Resolver<'_>,
    block: &Block,
    file: usize,
) -> Vec<(String, Option<&'static str>, BTreeMap<String, Value>)> {
    if let Some(count) = block.body.get_attribute("count") {
        return match resolver.value_of(&count.value, file) {
            Value::Number(n) if n >= 0.0 && n.fract() == 0.0 && n < 1024.0 => (0..n as usize)
                .map(|i| {
                    (
                        format!("[{i}]"),
                        None,
                        BTreeMap::from([("count.index".to_owned(), Value::Number(i as f64))]),
                    )
                })
                .collect(),
            _ => vec![(String::new(), Some("count"), BTreeMap::new())],
        };
    }
    if let Some(for_each) = block.body.get_attribute("for_each") {
        let pairs: Option<Vec<(String, Value)>> = match resolver.value_of(&for_each.value, file) {
            Value::Object(map) => Some(map.into_iter().collect()),
            Value::List(items) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) => Some((s.clone(), Value::String(s))),
                    _ => None,
                })
                .collect(),
            _ => None,
        };
        let _ = module;
        return match pairs {
            Some(pairs) => pairs
                .into_iter()
                .map(|(key, value)| {
                    (
                        format!("[{key:?}]"),
                        None,
                        BTreeMap::from([
                            ("each.key".to_owned(), Value::String(key)),
                            ("each.value".to_owned(), value),
                        ]),
                    )
                })
                .collect(),
            None => vec![(String::new(), Some("for_each"), BTreeMap::new())],
        };
    }
    vec![(String::new(), None, BTreeMap::new())]
}

/// The called module's inputs for one instance of a `module` block: its arguments evaluated
/// in the caller.
fn inputs_of(
    caller: &Module,
    resolver: &Resolver<'_>,
    block: &Block,
    file: usize,
) -> BTreeMap<String, Value> {
    block
        .body
        .attributes()
        .filter(|attr| !META_ARGUMENTS.contains(&attr.key.as_str()))
        .map(|attr| {
            let value = resolver.value_of(&attr.value, file);
            (
                attr.key.as_str().to_owned(),
                in_caller_terms(caller, resolver, value),
            )
        })
        .collect()
}

/// A value computed in the caller, as the called module sees it: a key of the caller is
/// judged there (the called module does not declare it).
fn in_caller_terms(caller: &Module, resolver: &Resolver<'_>, value: Value) -> Value {
    let recurse = |v: Value| in_caller_terms(caller, resolver, v);
    match value {
        Value::KeyAttribute { label, attribute } => {
            match (attribute.as_str(), check_key(caller, resolver, &label)) {
                ("arn", KeyVerdict::Usable(_)) => Value::External(format!(
                    "the calling module's aws_kms_key.{label}{VERIFIED_IN_CALLER}"
                )),
                _ => Value::Unknown(format!(
                    "the calling module's aws_kms_key.{label}.{attribute}, which is not a key ARN CloudTrail can use (run ctfix on that module's own trails to see why)"
                )),
            }
        }
        Value::OneOf(values) => Value::OneOf(values.into_iter().map(recurse).collect()),
        Value::List(values) => Value::List(values.into_iter().map(recurse).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, recurse(v))).collect())
        }
        other => other,
    }
}

/// Walks the calls of the module `key` (reached through `frames`), judging the trails of
/// every module below the root.
#[allow(clippy::too_many_arguments)]
fn walk_calls<'m>(
    view: &HashMap<PathBuf, &'m Module>,
    json: Option<&BTreeMap<String, PathBuf>>,
    root: &Path,
    key: &Path,
    resolver: &Resolver<'m>,
    frames: &mut Vec<Frame>,
    stack: &mut Vec<PathBuf>,
    instances: &mut Vec<Instance>,
    not_downloaded: &mut Vec<Finding>,
    called: &mut BTreeSet<PathBuf>,
) {
    let module = view[key];
    if !frames.is_empty() {
        let trails = analyze::find_trails(module);
        let verdicts = analyze::judge_all_with(module, resolver, &trails);
        for (trail, verdict) in trails.into_iter().zip(verdicts) {
            let name = module
                .block(trail.at)
                .body
                .get_attribute("name")
                .and_then(|attr| match resolver.value_of(&attr.value, trail.at.file) {
                    Value::String(s) => Some(s),
                    _ => None,
                });
            instances.push(Instance {
                frames: frames.clone(),
                dir: key.to_path_buf(),
                trail,
                verdict,
                name,
            });
        }
    }
    if frames.len() >= MAX_DEPTH || stack.iter().any(|k| k == key) {
        return;
    }
    stack.push(key.to_path_buf());
    for (at, name, source) in module_blocks(module) {
        let key_path = frames
            .iter()
            .map(|f| f.call.name.clone())
            .chain([name.clone()])
            .collect::<Vec<_>>()
            .join(".");
        let (target, _) = resolve_call(module, &source, json, &key_path);
        let call = Call {
            block: at,
            name: name.clone(),
            source: source.clone(),
        };
        let block = module.block(at);
        match target {
            Target::Ignored => {}
            Target::NotDownloaded => {
                if source.to_ascii_lowercase().contains("cloudtrail") {
                    not_downloaded.push(not_downloaded_finding(module, root, frames, &call));
                }
            }
            Target::Dir(child) => {
                let Some(&child_module) = view.get(&child) else {
                    continue;
                };
                called.insert(child.clone());
                for (instance_key, meta, bindings) in instances_of(module, resolver, block, at.file)
                {
                    let instance_resolver = resolver.for_instance(bindings);
                    let inputs = inputs_of(module, &instance_resolver, block, at.file);
                    let child_resolver = Resolver::with_inputs(child_module, inputs);
                    frames.push(Frame {
                        caller: key.to_path_buf(),
                        call: call.clone(),
                        key: instance_key,
                        meta,
                    });
                    walk_calls(
                        view,
                        json,
                        root,
                        &child,
                        &child_resolver,
                        frames,
                        stack,
                        instances,
                        not_downloaded,
                        called,
                    );
                    frames.pop();
                }
            }
        }
    }
    stack.pop();
}

/// `module.a["x"].module.b` for frames.
fn module_address(frames: &[Frame]) -> String {
    frames
        .iter()
        .map(|f| format!("module.{}{}", f.call.name, f.key))
        .collect::<Vec<_>>()
        .join(".")
}

/// The call sites of frames, outermost first.
fn via(view: &HashMap<PathBuf, &Module>, frames: &[Frame]) -> Vec<CallSite> {
    frames
        .iter()
        .enumerate()
        .map(|(i, frame)| {
            let module = view[&frame.caller];
            let (line, column) = block_position(module, frame.call.block);
            CallSite {
                path: module.files[frame.call.block.file].source.path.clone(),
                line,
                column,
                module: module_address(&frames[..=i]),
            }
        })
        .collect()
}

fn block_position(module: &Module, at: BlockRef) -> (usize, usize) {
    let block = module.block(at);
    let start = block.ident.span().map_or(0, |r| r.start);
    module.files[at.file].source.line_col(start)
}

fn not_downloaded_finding(module: &Module, root: &Path, frames: &[Frame], call: &Call) -> Finding {
    let (line, column) = block_position(module, call.block);
    let mut address = module_address(frames);
    if !address.is_empty() {
        address.push('.');
    }
    address.push_str(&format!("module.{}", call.name));
    let root_shown = crate::render::display_path(&normalize(root));
    let text = &module.files[call.block.file].source.text;
    let suppression = module
        .block(call.block)
        .span()
        .and_then(|span| find_suppression(text, span, &today()));
    let (status, reason, message) = match &suppression {
        Some(s) => (
            Status::Suppressed,
            "suppressed",
            format!("suppressed by `{}` (line {}); ctfix leaves it unchanged", s.comment, s.line),
        ),
        None => (
            Status::Unknown,
            "module-not-downloaded",
            format!(
                "{address} calls {:?}, which is not downloaded: run `terraform init` in {} so ctfix can judge its trails with this call's arguments",
                call.source,
                if root_shown.is_empty() { "." } else { root_shown.as_str() }
            ),
        ),
    };
    Finding {
        rule: RULE_ID,
        path: module.files[call.block.file].source.path.clone(),
        line,
        column,
        resource: address,
        status,
        reason,
        message,
        meta_argument: None,
        fix: None,
        suppression,
        via: Vec::new(),
    }
}

/// The variable of `module` that reaches `kms_key_id` unchanged, or as the first argument of
/// `coalesce` / `try`.
fn input_reaching_key(module: &Module, expr: &Expression, depth: usize) -> Option<String> {
    if depth > 8 {
        return None;
    }
    match expr {
        Expression::Parenthesis(p) => input_reaching_key(module, p.inner(), depth + 1),
        Expression::StringTemplate(t) => {
            let elements: Vec<_> = t.iter().collect();
            match elements.as_slice() {
                [hcl_edit::template::Element::Interpolation(i)] => {
                    input_reaching_key(module, &i.expr, depth + 1)
                }
                _ => None,
            }
        }
        Expression::FuncCall(call)
            if call.name.namespace.is_empty()
                && matches!(call.name.name.as_str(), "coalesce" | "try") =>
        {
            input_reaching_key(module, call.args.iter().next()?, depth + 1)
        }
        Expression::Traversal(traversal) => {
            let Expression::Variable(root) = &traversal.expr else {
                return None;
            };
            let [op] = traversal.operators.as_slice() else {
                return None;
            };
            let TraversalOperator::GetAttr(name) = op.value() else {
                return None;
            };
            match root.as_str() {
                "var" => Some(name.as_str().to_owned()),
                "local" => module.find_blocks("locals", None, None).find_map(|at| {
                    let attr = module.block(at).body.get_attribute(name.as_str())?;
                    input_reaching_key(module, &attr.value, depth + 1)
                }),
                _ => None,
            }
        }
        _ => None,
    }
}

/// `var.<name>` exactly.
/// The variables a string (or template of `var.<name>` interpolations, or one `var.<name>`)
/// reads; `None` when it reads anything else (a local, `each.key`, a function call).
fn variables_read(expr: &Expression) -> Option<BTreeSet<String>> {
    match expr {
        Expression::String(_) => Some(BTreeSet::new()),
        Expression::StringTemplate(template) => {
            let mut variables = BTreeSet::new();
            for element in template.iter() {
                match element {
                    hcl_edit::template::Element::Literal(_) => {}
                    hcl_edit::template::Element::Interpolation(interpolation) => {
                        variables.insert(passed_variable(&interpolation.expr)?);
                    }
                    hcl_edit::template::Element::Directive(_) => return None,
                }
            }
            Some(variables)
        }
        _ => passed_variable(expr).map(|name| BTreeSet::from([name])),
    }
}

/// An instance address with its instance keys left out: `module.r["a"].aws_cloudtrail.t[0]`
/// is `module.r.aws_cloudtrail.t`.
fn without_instance_keys(address: &str) -> String {
    let mut out = String::with_capacity(address.len());
    let mut depth = 0;
    let mut quoted = false;
    let mut escaped = false;
    for c in address.chars() {
        if depth > 0 {
            match c {
                _ if escaped => escaped = false,
                '\\' if quoted => escaped = true,
                '"' => quoted = !quoted,
                '[' if !quoted => depth += 1,
                ']' if !quoted => depth -= 1,
                _ => {}
            }
        } else if c == '[' {
            depth = 1;
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether an argument is a value fixed in the code: a string without interpolation, a
/// number or a bool.
fn is_fixed_literal(expr: &Expression) -> bool {
    matches!(
        expr,
        Expression::String(_) | Expression::Number(_) | Expression::Bool(_)
    )
}

fn passed_variable(expr: &Expression) -> Option<String> {
    let Expression::Traversal(traversal) = expr else {
        return None;
    };
    let Expression::Variable(root) = &traversal.expr else {
        return None;
    };
    match (root.as_str(), traversal.operators.as_slice()) {
        ("var", [op]) => match op.value() {
            TraversalOperator::GetAttr(name) => Some(name.as_str().to_owned()),
            _ => None,
        },
        _ => None,
    }
}

/// Whether replacing this argument value with a key loses nothing a human chose: absent,
/// `null`, an empty string or an AWS-managed alias.
fn replaceable_literal(expr: &Expression) -> bool {
    match expr {
        Expression::Null(_) => true,
        Expression::String(s) => {
            let s = s.value();
            s.trim().is_empty() || crate::resolve::is_aws_managed_alias(s)
        }
        _ => false,
    }
}

/// Where one call-site fix goes: the `module` block in `caller` and the argument it sets.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Site {
    caller: PathBuf,
    block: BlockRef,
    input: String,
}

/// What the fix of one instance is.
enum Plan {
    /// Edits at a call site.
    At(Site, Applicability, Option<TrailName>, Option<String>),
    /// Shown only, with a note.
    Note(String),
}

fn plan_for(view: &HashMap<PathBuf, &Module>, instance: &Instance) -> Plan {
    let child = view[&instance.dir];
    let trail_block = child.block(instance.trail.at);
    let Some(input) = trail_block
        .body
        .get_attribute("kms_key_id")
        .and_then(|attr| input_reaching_key(child, &attr.value, 0))
    else {
        return Plan::Note(format!(
            "kms_key_id of this trail does not come from one of its module's variables, so no caller can choose the key: change the module in {} (ctfix fixes it when run on that module alone)",
            crate::render::display_path(&normalize(&child.dir))
        ));
    };
    // Follow pass-through variables up to the call that decides the value.
    let mut level = instance.frames.len() - 1;
    let mut name = input;
    let arg = loop {
        let frame = &instance.frames[level];
        let caller = view[&frame.caller];
        let arg = caller
            .block(frame.call.block)
            .body
            .get_attribute(&name)
            .map(|attr| &attr.value);
        match arg.and_then(passed_variable) {
            Some(outer) if level > 0 => {
                name = outer;
                level -= 1;
            }
            _ => break arg,
        }
    };
    let frame = &instance.frames[level];
    let caller = view[&frame.caller];
    if under_dot_terraform(&caller.dir) {
        return Plan::Note(format!(
            "pass {name} = <a customer-managed key ARN> to module.{} (the calling module is a downloaded copy under .terraform/, which ctfix never edits)",
            frame.call.name
        ));
    }
    let applicability = if arg.is_none_or(replaceable_literal) {
        Applicability::Safe
    } else {
        Applicability::Unsafe
    };
    // The trail's name for the key policy: the argument's own text when this call passes
    // the name variable directly (it may read each.key); else the evaluated name, when no
    // value it reads can differ at apply (a caller's variable, tfvars, `-var`); else unknown
    // (the policy then covers the account's trails).
    let trail_name = trail_block.body.get_attribute("name").and_then(|attr| {
        let Some(name_var) = passed_variable(&attr.value) else {
            let stable = level == instance.frames.len() - 1
                && variables_read(&attr.value).is_some_and(|variables| {
                    variables.iter().all(|variable| {
                        caller
                            .block(frame.call.block)
                            .body
                            .get_attribute(variable)
                            .is_none_or(|passed| is_fixed_literal(&passed.value))
                    })
                });
            return (!stable).then_some(TrailName::Unknown);
        };
        if level != instance.frames.len() - 1 {
            return None;
        }
        let passed = caller
            .block(frame.call.block)
            .body
            .get_attribute(&name_var)?;
        let text = caller.text_of(frame.call.block.file, &passed.value)?;
        if text.contains('\n') {
            return None;
        }
        Some(match &passed.value {
            Expression::String(_) | Expression::StringTemplate(_)
                if text.len() >= 2 && text.starts_with('"') && text.ends_with('"') =>
            {
                TrailName::Quoted(text[1..text.len() - 1].to_owned())
            }
            _ => TrailName::Expression(text.to_owned()),
        })
    });
    // The trail's provider configuration, followed up the calls to the caller that gets the
    // key (`provider = aws.audit` inside, `providers = { aws.audit = aws.security }` outside).
    let mut provider = crate::module::provider_of(
        &child.files[instance.trail.at.file].source.text,
        trail_block,
    )
    .unwrap_or_else(|| "aws".to_owned());
    for frame in instance.frames[level..].iter().rev() {
        let caller = view[&frame.caller];
        let text = &caller.files[frame.call.block.file].source.text;
        if let Some(outer) =
            crate::fix::passed_provider(text, caller.block(frame.call.block), &provider)
        {
            provider = outer;
        }
    }
    Plan::At(
        Site {
            caller: frame.caller.clone(),
            block: frame.call.block,
            input: name,
        },
        applicability,
        trail_name,
        (provider != "aws").then_some(provider),
    )
}

/// Plans the call-site fixes of every noncompliant instance, proves them and fills `report`.
fn plan(
    view: &HashMap<PathBuf, &Module>,
    json: &HashMap<PathBuf, Option<BTreeMap<String, PathBuf>>>,
    roots: &[PathBuf],
    instances: Vec<Instance>,
    settings: &Settings,
    report: &mut Report,
) {
    // Suppressions at a call site cover every instance below it.
    let today = today();
    let mut findings = Vec::new();
    let mut plans: Vec<Option<Plan>> = Vec::new();
    for instance in &instances {
        let mut verdict = instance.verdict.clone();
        if verdict.status != Status::Suppressed {
            for frame in &instance.frames {
                let caller = view[&frame.caller];
                let text = &caller.files[frame.call.block.file].source.text;
                let found = caller
                    .block(frame.call.block)
                    .span()
                    .and_then(|span| find_suppression(text, span, &today));
                if let Some(s) = found {
                    verdict.status = Status::Suppressed;
                    verdict.reason = "suppressed";
                    verdict.message = format!(
                        "suppressed at the call site module.{} by `{}` (line {}){}; ctfix leaves it unchanged",
                        frame.call.name,
                        s.comment,
                        s.line,
                        s.reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default()
                    );
                    verdict.suppression = Some(s);
                    break;
                }
            }
        }
        let child = view[&instance.dir];
        let meta = instance.frames.iter().find_map(|f| f.meta).or(instance
            .trail
            .meta_argument
            .as_ref()
            .map(|m| m.name()));
        let module_prefix = module_address(&instance.frames);
        if verdict.reason == "external-key" && verdict.message.contains(VERIFIED_IN_CALLER) {
            // The caller's key was judged there: say so plainly.
            verdict.reason = "key-verified";
            verdict.message = verdict
                .message
                .split(", outside this module")
                .next()
                .unwrap_or_default()
                .replacen("comes from", "is", 1);
        }
        plans.push((verdict.status == Status::Noncompliant).then(|| plan_for(view, instance)));
        findings.push(Finding {
            rule: RULE_ID,
            path: child.files[instance.trail.at.file].source.path.clone(),
            line: instance.trail.line,
            column: instance.trail.column,
            resource: format!("{module_prefix}.{}", instance.trail.address),
            status: verdict.status,
            reason: verdict.reason,
            message: verdict.message,
            meta_argument: meta,
            fix: None,
            suppression: verdict.suppression,
            via: via(view, &instance.frames),
        });
    }
    // One fix per call site and argument, shared by the instances it covers.
    // The providers of the trails each site reaches: one key serves them only when they agree.
    let mut providers: BTreeMap<Site, BTreeSet<Option<String>>> = BTreeMap::new();
    for plan in plans.iter().flatten() {
        if let Plan::At(site, _, _, provider) = plan {
            providers
                .entry(site.clone())
                .or_default()
                .insert(provider.clone());
        }
    }
    type Planned = (Applicability, Option<TrailName>, Option<String>, Vec<usize>);
    let mut sites: BTreeMap<Site, Planned> = BTreeMap::new();
    for (i, plan) in plans.iter().enumerate() {
        match plan {
            Some(Plan::At(site, _, _, _)) if providers[site].len() > 1 => {
                let on: Vec<String> = providers[site]
                    .iter()
                    .map(|p| {
                        p.clone()
                            .unwrap_or_else(|| "the default provider".to_owned())
                    })
                    .collect();
                findings[i].fix = Some(FixSummary {
                    title: "choose a key per provider by hand".to_owned(),
                    applicability: Applicability::DisplayOnly,
                    selected: false,
                    applied: false,
                    note: Some(format!(
                        "the trails {} reaches run on different providers ({}): one generated key cannot serve them (a key is regional); pass a key ARN that each can use, or give the module one variable per provider",
                        site.input,
                        on.join(", ")
                    )),
                    diff: None,
                    files: Vec::new(),
                });
            }
            Some(Plan::At(site, applicability, trail_name, provider)) => {
                let entry = sites.entry(site.clone()).or_insert((
                    *applicability,
                    trail_name.clone(),
                    provider.clone(),
                    Vec::new(),
                ));
                entry.0 = entry.0.min(*applicability);
                if entry.1 != *trail_name {
                    entry.1 = None;
                }
                entry.3.push(i);
            }
            Some(Plan::Note(note)) => {
                findings[i].fix = Some(FixSummary {
                    title: "change the called module".to_owned(),
                    applicability: Applicability::DisplayOnly,
                    selected: false,
                    applied: false,
                    note: Some(note.clone()),
                    diff: None,
                    files: Vec::new(),
                });
            }
            None => {}
        }
    }
    let mut planners: BTreeMap<PathBuf, FixPlanner<'_>> = BTreeMap::new();
    let mut selected: BTreeMap<PathBuf, Vec<(Fix, Vec<usize>)>> = BTreeMap::new();
    for (site, (applicability, trail_name, provider, members)) in sites {
        let caller = view[&site.caller];
        let planner = planners
            .entry(site.caller.clone())
            .or_insert_with(|| FixPlanner::new(caller).with_key_options(&settings.key));
        let first = &instances[members[0]];
        // Instances of one call with different names share the key: name-scoped only when
        // they agree.
        let names: BTreeSet<Option<&String>> = members
            .iter()
            .map(|&i| instances[i].name.as_ref())
            .collect();
        let trail_name =
            trail_name.unwrap_or_else(|| match names.into_iter().collect::<Vec<_>>().as_slice() {
                [Some(name)] => TrailName::Quoted(crate::key_template::escape_string(name)),
                _ => TrailName::Unknown,
            });
        let call_name = &first
            .frames
            .iter()
            .find(|f| f.caller == site.caller && f.call.block == site.block)
            .map(|f| f.call.name.clone())
            .unwrap_or_default();
        // The key serves every instance the call reaches: named without instance keys.
        let address = without_instance_keys(&findings[members[0]].resource);
        let planned = planner.generate_key_for_call(&CallSiteKey {
            call: site.block,
            call_name,
            input: &site.input,
            trail_name,
            trail_address: &address,
            applicability,
            provider,
        });
        match planned {
            Err(error) => report.errors.push(error),
            Ok(fix) => {
                let chosen = fix.applicability >= settings.min_applicability
                    && fix.applicability > Applicability::DisplayOnly;
                let mut files: Vec<PathBuf> = fix.edits.iter().map(|e| e.path.clone()).collect();
                files.sort();
                files.dedup();
                for &i in &members {
                    let trail = view[&instances[i].dir].block(instances[i].trail.at);
                    findings[i].fix = Some(FixSummary {
                        title: fix.title.clone(),
                        applicability: fix.applicability,
                        selected: chosen,
                        applied: false,
                        note: crate::with_ignored_key_note(fix.note.clone(), trail),
                        diff: None,
                        files: files.clone(),
                    });
                }
                if chosen {
                    selected
                        .entry(site.caller.clone())
                        .or_default()
                        .push((fix, members));
                } else if let Some(diff) = render_alone(caller, &fix) {
                    for &i in &members {
                        if let Some(summary) = findings[i].fix.as_mut() {
                            summary.diff = Some(diff.clone());
                        }
                    }
                }
            }
        }
    }
    if !selected.is_empty() {
        match converge(view, json, roots, &selected, &findings) {
            Ok(changes) => report.changes = changes,
            Err(error) => {
                for fixes in selected.values() {
                    for (_, members) in fixes {
                        for &i in members {
                            if let Some(fix) = findings[i].fix.as_mut() {
                                fix.selected = false;
                                fix.note = Some(
                                    "not written: ctfix could not verify the fixed call site (see the error)".to_owned(),
                                );
                            }
                        }
                    }
                }
                report.errors.push(error);
            }
        }
    }
    report.findings.extend(findings);
}

fn render_alone(module: &Module, fix: &Fix) -> Option<String> {
    let path = &fix.edits.first()?.path;
    let source = &module.files.iter().find(|f| &f.source.path == path)?.source;
    let edits: Vec<&Edit> = fix.edits.iter().collect();
    let text = crate::fix::apply_edits(&source.text, &edits).ok()?;
    Some(crate::render::render_diff(
        path,
        &source.bytes,
        &source.bytes_with_text(&text),
    ))
}

/// Applies the selected call-site fixes and proves them: the changed files re-parse, and
/// every fixed instance is compliant when the call graph is judged again with the fixed
/// callers (ruff's converge check, across directories).
fn converge(
    view: &HashMap<PathBuf, &Module>,
    json: &HashMap<PathBuf, Option<BTreeMap<String, PathBuf>>>,
    roots: &[PathBuf],
    selected: &BTreeMap<PathBuf, Vec<(Fix, Vec<usize>)>>,
    findings: &[Finding],
) -> Result<Vec<FileChange>, FileError> {
    let mut fixed_modules: BTreeMap<PathBuf, (Module, Vec<usize>)> = BTreeMap::new();
    for (caller, fixes) in selected {
        let module = view[caller];
        let mut by_file: BTreeMap<usize, Vec<&Edit>> = BTreeMap::new();
        for edit in fixes.iter().flat_map(|(fix, _)| fix.edits.iter()) {
            let index = module
                .files
                .iter()
                .position(|f| f.source.path == edit.path)
                .ok_or_else(|| {
                    FileError::new(
                        &edit.path,
                        "internal error: an edit names a file outside its module",
                    )
                })?;
            by_file.entry(index).or_default().push(edit);
        }
        let mut texts = BTreeMap::new();
        for (&index, edits) in &by_file {
            let source = &module.files[index].source;
            let text = crate::fix::apply_edits(&source.text, edits).map_err(|message| {
                FileError::new(
                    &source.path,
                    format!("internal error planning fixes: {message}"),
                )
            })?;
            texts.insert(index, text);
        }
        let fixed = module.with_texts(&texts);
        if let Some(error) = fixed.errors.first() {
            return Err(FileError::new(
                &error.path,
                format!("the fixed file would not parse, so ctfix left it untouched (please report this): {}", error.message),
            ));
        }
        fixed_modules.insert(caller.clone(), (fixed, by_file.into_keys().collect()));
    }
    let mut fixed_view = view.clone();
    for (caller, (module, _)) in &fixed_modules {
        fixed_view.insert(caller.clone(), module);
    }
    let mut instances = Vec::new();
    for root in roots {
        let resolver = Resolver::new(fixed_view[root]);
        walk_calls(
            &fixed_view,
            json.get(root).and_then(Option::as_ref),
            root,
            root,
            &resolver,
            &mut Vec::new(),
            &mut Vec::new(),
            &mut instances,
            &mut Vec::new(),
            &mut BTreeSet::new(),
        );
    }
    let fixed_addresses: BTreeSet<&str> = selected
        .values()
        .flatten()
        .flat_map(|(_, members)| members.iter().map(|&i| findings[i].resource.as_str()))
        .collect();
    for instance in &instances {
        let address = format!(
            "{}.{}",
            module_address(&instance.frames),
            instance.trail.address
        );
        if fixed_addresses.contains(address.as_str())
            && instance.verdict.status != Status::Compliant
        {
            let module = fixed_view[&instance.dir];
            return Err(FileError::at(
                &module.files[instance.trail.at.file].source.path,
                instance.trail.line,
                instance.trail.column,
                format!(
                    "{address}: the planned call-site fix does not make the trail compliant ({}: {}), so ctfix left the calling module untouched (please report this)",
                    instance.verdict.reason, instance.verdict.message
                ),
            ));
        }
    }
    let mut changes = Vec::new();
    for (caller, (fixed, files)) in &fixed_modules {
        let before = view[caller];
        for &i in files {
            let source = &before.files[i].source;
            changes.push(FileChange {
                path: source.path.clone(),
                before: source.bytes.clone(),
                after: source.bytes_with_text(&fixed.files[i].source.text),
                written: false,
                module: caller.clone(),
            });
        }
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_keys_are_left_out_of_a_shared_keys_address() {
        assert_eq!(
            without_instance_keys("module.r[\"a]\\\"\"].module.w[0].aws_cloudtrail.t[1]"),
            "module.r.module.w.aws_cloudtrail.t"
        );
        assert_eq!(
            without_instance_keys("module.t.aws_cloudtrail.this"),
            "module.t.aws_cloudtrail.this"
        );
    }

    #[test]
    fn paths_normalize_without_the_disk() {
        assert_eq!(
            normalize(Path::new("./live/../modules/trail")),
            PathBuf::from("./modules/trail")
        );
        assert_eq!(normalize(Path::new("/a/b/../c")), PathBuf::from("/a/c"));
        assert_eq!(normalize(Path::new("../x")), PathBuf::from("../x"));
        assert_eq!(normalize(Path::new("a/..")), PathBuf::from("."));
    }

    fn module_of(text: &str) -> Module {
        let source = crate::parse::SourceFile::from_bytes(
            PathBuf::from("m/main.tf"),
            text.as_bytes().to_vec(),
        )
        .unwrap();
        Module::from_sources(Path::new("m"), vec![source])
    }

    fn key_input(text: &str) -> Option<String> {
        let module = module_of(text);
        let at = module
            .find_blocks("resource", Some("aws_cloudtrail"), None)
            .next()
            .unwrap();
        let attr = module.block(at).body.get_attribute("kms_key_id").unwrap();
        input_reaching_key(&module, &attr.value, 0)
    }

    /// Only a variable that reaches kms_key_id unchanged can be set by the caller for the fix.
    #[test]
    fn inputs_that_reach_the_key_unchanged() {
        let trail = |value: &str| {
            format!("resource \"aws_cloudtrail\" \"t\" {{\n  kms_key_id = {value}\n}}\n")
        };
        assert_eq!(key_input(&trail("var.key")).as_deref(), Some("key"));
        assert_eq!(key_input(&trail("\"${var.key}\"")).as_deref(), Some("key"));
        assert_eq!(
            key_input(&trail("coalesce(var.key, \"x\")")).as_deref(),
            Some("key")
        );
        assert_eq!(
            key_input(&trail("try(var.key, null)")).as_deref(),
            Some("key")
        );
        assert_eq!(
            key_input(&format!(
                "locals {{\n  k = var.key\n}}\n{}",
                trail("local.k")
            ))
            .as_deref(),
            Some("key")
        );
        assert_eq!(key_input(&trail("var.on ? var.key : null")), None);
        assert_eq!(key_input(&trail("coalesce(\"x\", var.key)")), None);
        assert_eq!(key_input(&trail("var.keys.trail")), None);
    }

    #[test]
    fn sources_in_bytes() {
        assert_eq!(
            sources_in(b"module \"a\" {\n  source  = \"../trail\"\n  x = \"source = \\\"y\\\"\"\n}\n\tsource=\"acme/ct/aws\"\nsource = \"open"),
            ["../trail", "acme/ct/aws"]
        );
    }

    #[test]
    fn sources_are_read_from_lines_without_parsing() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("main.tf");
        std::fs::write(
            &file,
            "module \"a\" {\n  source  = \"../trail\"\n}\nmodule \"b\" {\n  source=\"acme/ct/aws\"\n}\n# source = 3\n",
        )
        .unwrap();
        assert_eq!(quick_sources(&[file]), ["../trail", "acme/ct/aws"]);
    }

    #[test]
    fn byte_search_needs_module_and_source() {
        assert!(may_call_modules(b"module \"a\" {\n source = \"./m\"\n}"));
        assert!(!may_call_modules(b"resource \"aws_cloudtrail\" \"a\" {}"));
    }
}
