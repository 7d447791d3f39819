//! ctfix finds AWS CloudTrail trails in Terraform whose logs are not encrypted with a
//! customer-managed KMS key (Checkov CKV_AWS_35, Trivy AWS-0015, Security Hub CloudTrail.2)
//! and fixes them format-preservingly.
//!
//! The pipeline, a folder per stage: [`read`] ([`discover`] → [`parse`] / [`module`], [`calls`]
//! for module calls, [`tfjson`]) → [`judge`] ([`resolve`], [`policy`], [`key_check`],
//! [`key_choice`], [`suppress`] → [`analyze`]) → [`fix`] (the planner, with [`key_template`]) →
//! [`output`] ([`render`], [`report`], [`sarif`], [`pull_request`], [`explain`]) → [`write`](mod@write)
//! (each module's change set, whole or not at all) → [`git`] ([`vcs`], the bot's
//! [`git::branch`] rules, the [`git::github`] API client). [`check`] runs the stages that only
//! read; [`apply`] writes what they planned; [`run`] is one repository's whole run (check,
//! refusals, review, writes, commit, push, pull request) as plain data in and out; [`fleet`]
//! runs it per repository, [`lsp`] judges an editor's text, [`config`] reads `.ctfix.toml`.
//! [`cli`] wires it to the command line (arguments, prompts, printing); the binary only calls
//! that.
//!
//! ## Limitations
//! - Edits are spliced into the original text, so nothing outside them changes; the inserted
//!   text follows `terraform fmt` (alignment, two-space indentation, the file's line endings),
//!   but a file that was not `terraform fmt`-clean is not made clean.
//! - Files hcl-edit cannot parse are reported with their position and left untouched; a
//!   module with such a file is still fixed, and the labels declared in the broken file are
//!   avoided.
//! - `*_override.tf` files are read like any other file; Terraform's override merging is not
//!   modelled.
//! - Symbolic links to files are read but never written; links to directories are not
//!   followed.

#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod cli;
pub mod config;
pub mod fix;
pub mod fleet;
pub mod git;
pub mod judge;
pub mod lsp;
pub mod model;
pub mod output;
pub mod read;
pub mod run;
pub mod write;

// The stages keep their short paths (`crate::discover`, `ctfix::policy`, …).
pub use fix::key_template;
pub use judge::{analyze, key_check, key_choice, policy, resolve, suppress};
pub use output::{explain, pull_request, render, report, sarif};
pub use read::{calls, discover, module, parse, tfjson};

/// Kept at its old path: `ctfix::vcs` is `ctfix::git::vcs`.
pub use git::vcs;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

pub use model::{
    Applicability, Edit, FileChange, FileError, Finding, Fix, FixSummary, Report, Status,
};
pub use model::{BranchState, PullRequest, PullRequestAction};

use crate::discover::ModuleDir;
use crate::model::RULE_ID;
use crate::module::Module;

/// The process exit status: ruff's and ripgrep's convention (ordered: the worst wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExitStatus {
    /// 0: nothing to fix (or everything fixed).
    Clean,
    /// 1: trails to fix remain.
    Findings,
    /// 2: an error occurred (other files were still processed).
    Error,
}

impl ExitStatus {
    /// The numeric code.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Clean => 0,
            ExitStatus::Findings => 1,
            ExitStatus::Error => 2,
        }
    }

    /// The status a report implies.
    pub fn of(report: &Report) -> ExitStatus {
        if !report.errors.is_empty() {
            ExitStatus::Error
        } else if report.findings.iter().any(|f| {
            f.status == Status::Noncompliant && !f.fix.as_ref().is_some_and(|fix| fix.applied)
        }) {
            ExitStatus::Findings
        } else {
            ExitStatus::Clean
        }
    }

    /// The status of a run: [`ExitStatus::of_strict`] with `fail_on_unknown`, else
    /// [`ExitStatus::of`].
    pub fn of_run(report: &Report, fail_on_unknown: bool) -> ExitStatus {
        if fail_on_unknown {
            ExitStatus::of_strict(report)
        } else {
            ExitStatus::of(report)
        }
    }

    /// The status a report implies under `--fail-on-unknown`: a trail ctfix could not
    /// decide counts as a finding, so a CI gate does not pass what nobody checked.
    pub fn of_strict(report: &Report) -> ExitStatus {
        let unknown = report.findings.iter().any(|f| f.status == Status::Unknown);
        match ExitStatus::of(report) {
            ExitStatus::Clean if unknown => ExitStatus::Findings,
            status => status,
        }
    }
}

/// What a check run should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Files and directories to check.
    pub paths: Vec<PathBuf>,
    /// The least safe fix to include in changes: `Safe`, or `Unsafe` with `--unsafe-fixes`.
    pub min_applicability: Applicability,
    /// How generated keys look, or a central key to wire instead (`.ctfix.toml`).
    pub key: key_template::KeyOptions,
    /// Files and directories left out (`exclude` in `.ctfix.toml`).
    pub exclude: Option<config::Exclude>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            paths: vec![PathBuf::from(".")],
            min_applicability: Applicability::Safe,
            key: key_template::KeyOptions::default(),
            exclude: None,
        }
    }
}

/// Files written at once by [`apply`]: enough to keep the disk busy while each waits on its
/// sync.
const WRITE_THREADS: usize = 16;

/// The bytes that make a file worth parsing: a file without them holds no trail.
pub(crate) const TRAIL_MARKER: &[u8] = b"aws_cloudtrail";

/// A fix's note, with what `lifecycle.ignore_changes` on the trail means for it.
pub(crate) fn with_ignored_key_note(
    note: Option<String>,
    trail: &hcl_edit::structure::Block,
) -> Option<String> {
    if !analyze::ignores_key_changes(trail) {
        return note;
    }
    Some(match note {
        Some(note) => format!("{note}; {}", analyze::IGNORED_KEY_NOTE),
        None => analyze::IGNORED_KEY_NOTE.to_owned(),
    })
}

/// Runs discover → analyze → fix for every module and returns what it found and would change.
/// Reads files; writes nothing.
///
/// Streams: modules are checked in parallel as the walk finds them, and a module is loaded
/// (every file read and parsed) only when a byte search finds `aws_cloudtrail` in one of its
/// target files, so memory does not grow with the size of the tree.
pub fn check(settings: &Settings) -> Report {
    let files_scanned = std::sync::atomic::AtomicUsize::new(0);
    let outcomes = std::sync::Mutex::new(Vec::new());
    let callers = std::sync::Mutex::new(Vec::new());
    let excluded = settings.exclude.as_ref().map(|exclude| exclude.matcher());
    let errors = discover::visit_modules(&settings.paths, &|mut module: ModuleDir| {
        if let Some(excluded) = &excluded {
            module.targets.retain(|path| !excluded(path));
            if module.targets.is_empty() {
                return;
            }
        }
        let files = module.files.len() + module.json_files.len();
        files_scanned.fetch_add(files, std::sync::atomic::Ordering::Relaxed);
        let scan = scan_module(&module);
        if scan.calls && !scan.sources.is_empty() {
            let mut callers = callers.lock().unwrap_or_else(|p| p.into_inner());
            callers.push((module.clone(), scan.sources));
        }
        if scan.trail {
            let outcome = check_module(&module, settings);
            let mut outcomes = outcomes.lock().unwrap_or_else(|p| p.into_inner());
            outcomes.push((module.dir, outcome));
        }
    });
    let mut outcomes = outcomes.into_inner().unwrap_or_else(|p| p.into_inner());
    let callers = callers.into_inner().unwrap_or_else(|p| p.into_inner());
    if !callers.is_empty() {
        let trail_dirs: Vec<PathBuf> = outcomes.iter().map(|(dir, _)| dir.clone()).collect();
        merge_followed(&mut outcomes, calls::follow(callers, &trail_dirs, settings));
    }
    // Merge in directory order, as if the modules had been checked one after the other.
    outcomes.sort_by(|a, b| a.0.cmp(&b.0));
    let mut report = Report {
        errors,
        files_scanned: files_scanned.into_inner(),
        ..Report::default()
    };
    for (_, outcome) in outcomes {
        report.findings.extend(outcome.findings);
        report.changes.extend(outcome.changes);
        report.errors.extend(outcome.errors);
    }
    report.sort();
    report
}

/// Replaces the root findings of called directories with the per-instance ones (their
/// errors stay), and adds the call-site changes that no other fix of the run touches.
fn merge_followed(outcomes: &mut Vec<(PathBuf, Report)>, mut followed: calls::Followed) {
    for (dir, outcome) in outcomes.iter_mut() {
        if followed.called.contains(&calls::canonical(dir)) && !calls::applied_on_its_own(dir) {
            outcome.findings.clear();
            outcome.changes.clear();
        }
    }
    // Two plans for one module (labels and data sources are claimed per plan): the module's
    // own fixes go first, the call site's on the next run.
    let taken: BTreeSet<PathBuf> = outcomes
        .iter()
        .flat_map(|(_, o)| o.changes.iter().filter_map(|c| c.path.parent()))
        .map(calls::canonical)
        .collect();
    let clashes = |path: &std::path::Path| {
        path.parent()
            .is_some_and(|dir| taken.contains(&calls::canonical(dir)))
    };
    if followed.report.changes.iter().any(|c| clashes(&c.path)) {
        followed.report.changes.retain(|c| !clashes(&c.path));
        for finding in &mut followed.report.findings {
            let touches = finding.via.iter().any(|site| clashes(&site.path));
            if let Some(fix) = finding.fix.as_mut().filter(|f| f.selected && touches) {
                fix.selected = false;
                fix.note = Some(
                    "not written: this run's other fixes change the calling module; run ctfix again".to_owned(),
                );
            }
        }
    }
    outcomes.push((PathBuf::new(), followed.report));
}

/// Whether any target file of the module mentions `aws_cloudtrail`, and whether any may
/// call modules (byte searches; most Terraform files are never parsed).
///
/// Each file is read into one buffer per thread with plain `open`/`read` calls (no `stat`,
/// no allocation per file); a buffer grown past 1 MiB by a large file is released afterwards.
fn scan_module(module: &ModuleDir) -> calls::Scan {
    use std::io::Read;
    /// Reads `path` into `buffer`, returning the number of bytes read.
    fn read_into(path: &std::path::Path, buffer: &mut Vec<u8>) -> std::io::Result<usize> {
        let mut file = std::fs::File::open(path)?;
        let mut filled = 0;
        loop {
            if filled == buffer.len() {
                buffer.resize((buffer.len() * 2).max(64 * 1024), 0);
            }
            match file.read(&mut buffer[filled..]) {
                Ok(0) => return Ok(filled),
                Ok(n) => filled += n,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
    }
    thread_local! {
        static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    static FINDER: std::sync::OnceLock<memchr::memmem::Finder<'static>> =
        std::sync::OnceLock::new();
    let finder = FINDER.get_or_init(|| memchr::memmem::Finder::new(TRAIL_MARKER));
    BUFFER.with_borrow_mut(|buffer| {
        // A file that cannot be read may hold a trail: the module is loaded, which reports it.
        let mut found = calls::Scan::default();
        for path in &module.targets {
            match read_into(path, buffer) {
                Ok(len) => {
                    let trail = finder.find(&buffer[..len]).is_some();
                    found.add(&buffer[..len], trail);
                }
                Err(_) => found.trail = true,
            }
        }
        if buffer.len() > 1 << 20 {
            *buffer = Vec::new();
        }
        found
    })
}

/// Whether a remedy's fix is safe (for the planning order only; the planner decides).
fn is_safe_remedy(remedy: &analyze::Remedy) -> bool {
    use analyze::Remedy;
    matches!(
        remedy,
        Remedy::GenerateKey
            | Remedy::GenerateKeyNoting { .. }
            | Remedy::WireKey { .. }
            | Remedy::UseArn { extend: None, .. }
    )
}

/// Analyzes and plans fixes for one module.
pub fn check_module(dir: &ModuleDir, settings: &Settings) -> Report {
    check_module_selecting(dir, settings, None, &module::Overlay::new())
}

/// [`check_module`] with the text of the files `overlay` names taken from it instead of the
/// disk (the language server judges an editor's unsaved buffers). Changes are planned against
/// that text: their `before` is the overlay's bytes.
pub fn check_module_with(
    dir: &ModuleDir,
    settings: &Settings,
    overlay: &module::Overlay,
) -> Report {
    check_module_selecting(dir, settings, None, overlay)
}

/// Re-plans the module holding `files` with only the fixes of the trails named in `trails`
/// (resource addresses) selected: what a reviewer accepted when declining other trails of
/// the module. The accepted fixes are planned first, so the data sources they share are
/// theirs, and the changes are verified as a whole again. `files` are the module's files
/// that hold findings (they become its targets).
pub fn check_trails(settings: &Settings, files: &[PathBuf], trails: &BTreeSet<String>) -> Report {
    let discovery = discover::discover(files);
    let mut report = Report {
        errors: discovery.errors,
        ..Report::default()
    };
    for module in &discovery.modules {
        let outcome =
            check_module_selecting(module, settings, Some(trails), &module::Overlay::new());
        report.findings.extend(outcome.findings);
        report.changes.extend(outcome.changes);
        report.errors.extend(outcome.errors);
    }
    report.sort();
    report
}

/// [`check_module`], selecting only the fixes of the trails in `only` when given, with the
/// text of the files `overlay` names taken from it.
fn check_module_selecting(
    dir: &ModuleDir,
    settings: &Settings,
    only: Option<&BTreeSet<String>>,
    overlay: &module::Overlay,
) -> Report {
    let is_chosen = |address: &str| only.is_none_or(|only| only.contains(address));
    let module = Module::load_with(dir, overlay);
    let mut report = Report {
        errors: module.errors.clone(),
        ..Report::default()
    };
    let trails = analyze::find_trails(&module);
    let mut verdicts = analyze::judge_all(&module, &trails);
    // Terraform rejects a module that declares an address twice; fixing either copy would
    // only hide that.
    for (i, trail) in trails.iter().enumerate() {
        if let Some(first) = trails[..i].iter().find(|t| t.address == trail.address) {
            let first_path = render::display_path(&module.files[first.at.file].source.path);
            report.errors.push(FileError::at(
                &module.files[trail.at.file].source.path,
                trail.line,
                trail.column,
                format!(
                    "{} is declared again (first at {first_path}:{}); Terraform rejects duplicate resource addresses, so ctfix fixes neither",
                    trail.address, first.line
                ),
            ));
        }
    }
    for (trail, verdict) in trails.iter().zip(verdicts.iter_mut()) {
        if trails.iter().filter(|t| t.address == trail.address).count() > 1 {
            verdict.remedy = analyze::Remedy::None;
        }
    }
    // Terraform rejects a block whose name is not an identifier, so it cannot load the module:
    // a fix would be written where nothing (not even `terraform validate`) can check it.
    for (trail, verdict) in trails.iter().zip(verdicts.iter_mut()) {
        if !crate::module::is_identifier(&trail.label) && verdict.remedy != analyze::Remedy::None {
            verdict.remedy = analyze::Remedy::None;
            report.errors.push(FileError::at(
                &module.files[trail.at.file].source.path,
                trail.line,
                trail.column,
                format!(
                    "{}: {:?} is not a valid Terraform name (letters, digits, `_` and `-`, not starting with a digit or `-`), so Terraform rejects this block; ctfix did not fix it (rename the resource, then run ctfix again)",
                    trail.address, trail.label
                ),
            ));
        }
    }
    let mut planner = fix::FixPlanner::new(&module).with_key_options(&settings.key);
    let mut selected: Vec<&Fix> = Vec::new();
    let mut planned: Vec<Option<Fix>> = Vec::new();
    let mut fixed_addresses = BTreeSet::new();
    // Plan the fixes that are safe first: data sources a fix adds are shared with later
    // fixes of at most the same safety, so a safe fix planned after an unsafe one would add
    // its own copies (`current_2`).
    let mut order: Vec<usize> = (0..trails.len()).collect();
    order.sort_by_key(|&i| {
        (
            !is_chosen(&trails[i].address),
            !is_safe_remedy(&verdicts[i].remedy),
        )
    });
    let mut plans: Vec<Option<Result<Fix, FileError>>> = (0..trails.len()).map(|_| None).collect();
    for i in order {
        plans[i] = planner.plan(&trails[i], &verdicts[i].remedy);
    }
    for ((trail, verdict), plan) in trails.iter().zip(verdicts).zip(plans) {
        let file = &module.files[trail.at.file];
        let fix = match plan {
            None => None,
            Some(Err(error)) => {
                report.errors.push(error);
                None
            }
            Some(Ok(fix)) => Some(fix),
        };
        let summary = fix.as_ref().map(|fix| FixSummary {
            title: fix.title.clone(),
            applicability: fix.applicability,
            selected: fix.applicability >= settings.min_applicability
                && fix.applicability > Applicability::DisplayOnly
                && is_chosen(&trail.address),
            applied: false,
            note: with_ignored_key_note(fix.note.clone(), module.block(trail.at)),
            diff: None,
            files: {
                let mut files: Vec<std::path::PathBuf> =
                    fix.edits.iter().map(|e| e.path.clone()).collect();
                files.sort();
                files.dedup();
                files
            },
        });
        if summary.as_ref().is_some_and(|s| s.selected) {
            fixed_addresses.insert(trail.address.clone());
        }
        report.findings.push(Finding {
            rule: RULE_ID,
            path: file.source.path.clone(),
            line: trail.line,
            column: trail.column,
            resource: trail.address.clone(),
            status: verdict.status,
            reason: verdict.reason,
            message: verdict.message,
            meta_argument: trail.meta_argument.as_ref().map(|m| m.name()),
            fix: summary,
            suppression: verdict.suppression,
            via: Vec::new(),
        });
        planned.push(fix);
    }
    for (finding, fix) in report.findings.iter_mut().zip(&planned) {
        let (Some(summary), Some(fix)) = (&mut finding.fix, fix) else {
            continue;
        };
        if summary.selected {
            selected.push(fix);
        } else if !fix.edits.is_empty() {
            // Shown, not written: its own diff goes with the finding.
            summary.diff = render_fix_alone(&module, fix);
        }
    }
    for path in dir.json_files.iter().filter(|p| dir.targets.contains(*p)) {
        let Ok(bytes) = std::fs::read(path) else {
            continue;
        };
        if memchr::memmem::find(&bytes, TRAIL_MARKER).is_none() {
            continue;
        }
        match tfjson::check_json_file(&module, path, &bytes) {
            Ok(findings) => report.findings.extend(findings),
            Err(error) => report.errors.push(error),
        }
    }
    let uncertain = module.uncertain();
    if !selected.is_empty() && !uncertain.is_empty() {
        // What the unreadable files declare is unknown: a fix could collide with it.
        for finding in &mut report.findings {
            if let Some(fix) = finding.fix.as_mut().filter(|fix| fix.selected) {
                fix.selected = false;
                fix.note = Some(format!(
                    "not written: ctfix cannot read {} of this module, and a fix could clash with what it declares",
                    uncertain
                        .iter()
                        .map(|p| render::display_path(p))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    } else if !selected.is_empty() {
        // The trails wired to the configuration's central key.
        let central: BTreeSet<String> = report
            .findings
            .iter()
            .filter(|f| {
                f.fix
                    .as_ref()
                    .is_some_and(|fix| fix.selected && fix.title.contains(fix::CENTRAL_KEY_MARK))
            })
            .map(|f| f.resource.clone())
            .collect();
        let central_key = settings.key.use_key.as_ref().map(|key| (key, &central));
        match build_changes(&module, &selected, &fixed_addresses, central_key) {
            Ok(changes) => {
                // A fix another one covers (no edits of its own) stands or falls with its
                // module's change set.
                for finding in &mut report.findings {
                    if let Some(fix) = finding.fix.as_mut().filter(|fix| fix.selected) {
                        if fix.files.is_empty() {
                            fix.files = changes.iter().map(|c| c.path.clone()).collect();
                        }
                    }
                }
                report.changes = changes;
            }
            Err(error) => {
                for finding in &mut report.findings {
                    if let Some(fix) = finding.fix.as_mut().filter(|fix| fix.selected) {
                        fix.selected = false;
                        fix.note = Some(
                            "not written: ctfix could not verify the fixed module (see the error)"
                                .to_owned(),
                        );
                    }
                }
                report.errors.push(error);
            }
        }
    }
    // Syntax errors met in files parsed only as far as the judgement read them.
    report.errors.extend(module.late_errors());
    report
}

/// The diff one fix would make on its own.
fn render_fix_alone(module: &Module, fix: &Fix) -> Option<String> {
    let mut out = String::new();
    let mut paths: Vec<&std::path::Path> = fix.edits.iter().map(|e| e.path.as_path()).collect();
    paths.sort();
    paths.dedup();
    for path in paths {
        let source = &module.files.iter().find(|f| f.source.path == path)?.source;
        let edits: Vec<&Edit> = fix.edits.iter().filter(|e| e.path == path).collect();
        let text = fix::apply_edits(&source.text, &edits).ok()?;
        out.push_str(&render::render_diff(
            path,
            &source.bytes,
            &source.bytes_with_text(&text),
        ));
    }
    Some(out)
}

/// Applies the selected fixes to their files' text and proves the result: every changed file
/// re-parses, and every fixed trail is judged compliant on the fixed module (ruff's
/// "converge" check). Any failure drops the module's changes.
fn build_changes(
    module: &Module,
    selected: &[&Fix],
    fixed_addresses: &BTreeSet<String>,
    central_key: Option<(&key_template::UseKey, &BTreeSet<String>)>,
) -> Result<Vec<FileChange>, FileError> {
    let mut by_file: BTreeMap<usize, Vec<&Edit>> = BTreeMap::new();
    for edit in selected.iter().flat_map(|fix| fix.edits.iter()) {
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
    let mut new_texts = BTreeMap::new();
    for (&file_index, edits) in &by_file {
        let source = &module.files[file_index].source;
        let text = fix::apply_edits(&source.text, edits).map_err(|message| {
            FileError::new(
                &source.path,
                format!("internal error planning fixes: {message}"),
            )
        })?;
        new_texts.insert(file_index, text);
    }
    let fixed = module.with_texts(&new_texts);
    if let Some(error) = by_file.keys().find_map(|&i| {
        fixed
            .errors
            .iter()
            .find(|e| e.path == module.files[i].source.path)
    }) {
        return Err(FileError::new(
            &error.path,
            format!(
                "the fixed file would not parse, so ctfix left it untouched (please report this): {}",
                error.message
            ),
        ));
    }
    let trails = analyze::find_trails(&fixed);
    let verdicts = analyze::judge_all(&fixed, &trails);
    for (trail, verdict) in trails.iter().zip(verdicts) {
        // The central key's fix, when that key is a variable's: the caller gives it, so the
        // fixed trail is undecided ("variable-no-default"), which is what the fix means.
        let wired = central_key.filter(|(_, trails)| trails.contains(&trail.address));
        let caller_decides = wired.is_some_and(
            |(key, _)| matches!(key, key_template::UseKey::Expression(e) if e.starts_with("var.")),
        ) && verdict.status == Status::Unknown
            && verdict.reason == "variable-no-default";
        if fixed_addresses.contains(&trail.address)
            && verdict.status != Status::Compliant
            && !caller_decides
        {
            return Err(FileError::at(
                &fixed.files[trail.at.file].source.path,
                trail.line,
                trail.column,
                match wired {
                    // The configuration's key, not the planner, is then what falls short.
                    Some((key, _)) => format!(
                        "{}: the key .ctfix.toml's use-key names ({}) does not make the trail compliant ({}: {}), so ctfix left the module untouched: fix that key or change use-key",
                        trail.address, key.value(), verdict.reason, verdict.message
                    ),
                    None => format!(
                        "{}: the planned fix does not make the trail compliant ({}: {}), so ctfix left the module untouched (please report this)",
                        trail.address, verdict.reason, verdict.message
                    ),
                },
            ));
        }
    }
    Ok(by_file
        .keys()
        .map(|&i| {
            let before = &module.files[i].source;
            FileChange {
                path: before.path.clone(),
                before: before.bytes.clone(),
                after: before.bytes_with_text(&fixed.files[i].source.text),
                written: false,
                module: module.dir.clone(),
            }
        })
        .collect())
}

/// Writes the report's changes (those `accept` agrees to) and marks what was written.
///
/// The changes of one module (see [`FileChange::module`]) are written all or nothing
/// ([`write::write_change_set`]): a module is written only when `accept` agrees to every one
/// of its changes, and when one of its files cannot be written, none is (any already
/// replaced get their original back), with an error naming the cause. Other modules are
/// still written. A fix is marked applied when every file it needs was written.
pub fn apply(report: &mut Report, mut accept: impl FnMut(&FileChange) -> bool) {
    use rayon::prelude::*;
    // Ask first (one at a time), then write: each write syncs the file and its directory,
    // so writes overlap on a pool sized for waiting on the disk, not for the CPU.
    let accepted: Vec<bool> = report.changes.iter().map(&mut accept).collect();
    let mut sets: BTreeMap<&std::path::Path, Vec<usize>> = BTreeMap::new();
    for (i, change) in report.changes.iter().enumerate() {
        sets.entry(change.module.as_path()).or_default().push(i);
    }
    let sets: Vec<Vec<usize>> = sets
        .into_values()
        .filter(|set| set.iter().all(|&i| accepted[i]))
        .collect();
    let changes = &report.changes;
    let write = |set: &Vec<usize>| -> Result<(), Vec<FileError>> {
        let files: Vec<write::FileWrite<'_>> = set
            .iter()
            .map(|&i| write::FileWrite {
                path: &changes[i].path,
                before: &changes[i].before,
                after: &changes[i].after,
            })
            .collect();
        write::write_change_set(&files).map_err(|failure| explain_not_written(&files, *failure))
    };
    let results: Vec<Result<(), Vec<FileError>>> = match rayon::ThreadPoolBuilder::new()
        .num_threads(WRITE_THREADS)
        .build()
    {
        Ok(pool) => pool.install(|| sets.par_iter().map(write).collect()),
        Err(_) => sets.iter().map(write).collect(),
    };
    let mut written_paths = BTreeSet::new();
    for (set, result) in sets.iter().zip(results) {
        match result {
            Ok(()) => {
                for &i in set {
                    report.changes[i].written = true;
                    written_paths.insert(report.changes[i].path.clone());
                }
            }
            Err(errors) => report.errors.extend(errors),
        }
    }
    for finding in &mut report.findings {
        if let Some(fix) = &mut finding.fix {
            if fix.selected
                && !fix.files.is_empty()
                && fix.files.iter().all(|path| written_paths.contains(path))
            {
                fix.applied = true;
            }
        }
    }
    report.sort();
}

/// The errors for a change set that was not written: the cause, saying that the set's other
/// files were left as they were too, and any file whose original could not be put back.
fn explain_not_written(
    files: &[write::FileWrite<'_>],
    failure: write::NotWritten,
) -> Vec<FileError> {
    let mut cause = failure.cause;
    let list = |paths: &[&std::path::Path]| {
        paths
            .iter()
            .map(|p| render::display_path(p))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let not_written: Vec<&std::path::Path> = files
        .iter()
        .map(|f| f.path)
        .filter(|path| {
            *path != cause.path
                && !failure.restored.iter().any(|p| p == path)
                && !failure.unrestored.iter().any(|e| e.path == *path)
        })
        .collect();
    let restored: Vec<&std::path::Path> = failure.restored.iter().map(|p| p.as_path()).collect();
    let mut parts = Vec::new();
    if !not_written.is_empty() {
        parts.push(format!("{} not written either", list(&not_written)));
    }
    if let [one] = restored.as_slice() {
        parts.push(format!(
            "{} was already replaced, and ctfix put its original back",
            list(&[one])
        ));
    } else if !restored.is_empty() {
        parts.push(format!(
            "{} were already replaced, and ctfix put their originals back",
            list(&restored)
        ));
    }
    if !failure.unrestored.is_empty() {
        cause.message.push_str(&format!(
            "; the fixes of this module are written together or not at all, but ctfix could not put back what it had already written of {} (see {})",
            list(&failure.unrestored.iter().map(|e| e.path.as_path()).collect::<Vec<_>>()),
            if failure.unrestored.len() == 1 { "its error" } else { "their errors" }
        ));
    } else if !parts.is_empty() {
        cause.message.push_str(&format!(
            "; the fixes of this module are written together or not at all, so the module was left as it was ({})",
            parts.join("; ")
        ));
    }
    let mut errors = vec![cause];
    errors.extend(failure.unrestored);
    errors
}
