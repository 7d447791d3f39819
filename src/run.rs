//! One repository's run, as plain data in and out: [`RunOptions`] → [`RunOutcome`].
//!
//! Check; with `--apply`, everything that can refuse is checked before the first write; a
//! [`Reviewer`] chooses what to write (all of it for `--yes`, a person's answers otherwise);
//! the chosen changes are written; then commit, push and the pull-request body, as asked.
//! Nothing here prints: the command line, a fleet run or a bot reads the outcome.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use crate::model::{FileChange, FileError, Report};
use crate::{apply, check, pull_request, vcs, Settings};

/// What one run should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    /// What to check and which fixes to select.
    pub settings: Settings,
    /// Only check, or write too.
    pub mode: Mode,
}

/// Check only, or write the fixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Read and report; write nothing.
    Check,
    /// Write the fixes the reviewer accepts.
    Apply(ApplyOptions),
}

/// How `--apply` writes and records its changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Write even to files holding uncommitted changes in git (`--allow-dirty`).
    pub allow_dirty: bool,
    /// Commit the written files (`--commit` / `--branch`), and maybe push.
    pub commit: Option<CommitOptions>,
    /// Where to write the pull-request body (`--pr-body`).
    pub pr_body: Option<PathBuf>,
}

/// The commit `--apply` makes of what it wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitOptions {
    /// A new branch to commit on (`--branch`); `None` commits on the current branch.
    pub branch: Option<String>,
    /// The remote to push the branch to (`--push [--remote R]`).
    pub push: Option<String>,
}

/// Chooses which of a report's fixes to write: every one (`--yes`), or a person's answers.
pub trait Reviewer {
    /// Why this reviewer cannot review now (no terminal, a machine output format), or `None`.
    /// Asked before anything is written; a reason refuses the whole run.
    fn refusal(&self) -> Option<String>;
    /// Returns the fixes to write. Called only when there are changes and nothing refused.
    fn review(&mut self, report: &Report) -> io::Result<Accepted>;
}

/// What a [`Reviewer`] accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Every selected fix.
    All,
    /// The fixes of these trails, as `(finding's path, resource address)`. A module some of
    /// whose trails were declined is planned again with the accepted ones only, so what is
    /// written still verifies as a whole.
    Trails(BTreeSet<(PathBuf, String)>),
}

/// Accepts every change (`--apply --yes`, bots, fleet runs).
#[derive(Debug, Clone, Copy, Default)]
pub struct AcceptAll;

impl Reviewer for AcceptAll {
    fn refusal(&self) -> Option<String> {
        None
    }

    fn review(&mut self, _report: &Report) -> io::Result<Accepted> {
        Ok(Accepted::All)
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOutcome {
    /// Findings, changes (with what was written), errors and the commit.
    pub report: Report,
    /// Whether the reviewer was asked (and so has already shown the findings and diffs).
    pub reviewed: bool,
    /// Where the pull-request body was written: only when a file was.
    pub pr_body: Option<PathBuf>,
}

/// Runs one repository's check, and with [`Mode::Apply`] its writes, commit, push and body.
/// `Err` only when the reviewer's input or output fails.
pub fn run(options: &RunOptions, reviewer: &mut dyn Reviewer) -> io::Result<RunOutcome> {
    let settings = &options.settings;
    let mut report = check(settings);
    let anchor = settings
        .paths
        .first()
        .cloned()
        .unwrap_or_else(|| PathBuf::from("."));
    let apply_options = match &options.mode {
        Mode::Check => return Ok(outcome(report)),
        Mode::Apply(apply_options) => apply_options,
    };
    if report.changes.is_empty() {
        if let Some(CommitOptions {
            branch: Some(branch),
            push: Some(remote),
        }) = &apply_options.commit
        {
            // A rerun after a failed push finds nothing to write: push ctfix's commit.
            match vcs::resume_push(&anchor, branch, remote, pull_request::TITLE) {
                Ok(committed) => report.committed = committed,
                Err(error) => report.errors.push(FileError::new(
                    &anchor,
                    format!("the branch's commit was not pushed: {error}"),
                )),
            }
        }
        return Ok(outcome(report));
    }

    // Everything that can refuse is checked before the first write. A refusal is an error of
    // the report (so JSON and SARIF carry it too); the findings and diffs are still shown.
    let mut refusals = Vec::new();
    if let Some(reason) = reviewer.refusal() {
        refusals.push(FileError::new(&anchor, reason));
    }
    if let Some(path) = &apply_options.pr_body {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            refusals.push(FileError::new(
                path,
                "cannot write the pull-request body here: the directory does not exist; nothing was written",
            ));
        }
    }
    let to_write: Vec<&Path> = report.changes.iter().map(|c| c.path.as_path()).collect();
    let prepared = match &apply_options.commit {
        Some(commit) => {
            match vcs::prepare_commit(&to_write, commit.branch.as_deref(), commit.push.as_deref()) {
                Ok(prepared) => Some(prepared),
                Err(error) => {
                    refusals.push(FileError::new(
                        &anchor,
                        format!("{error}; nothing was written"),
                    ));
                    None
                }
            }
        }
        None if apply_options.allow_dirty => None,
        None => match vcs::uncommitted(&to_write) {
            Ok(dirty) => {
                refusals.extend(dirty.into_iter().map(|path| {
                    FileError::new(
                        path,
                        "has uncommitted changes, and ctfix would mix its edits into them: commit or stash them first, or pass --allow-dirty to write anyway; nothing was written",
                    )
                }));
                None
            }
            Err(error) => {
                refusals.push(FileError::new(
                    &anchor,
                    format!("{error}; nothing was written"),
                ));
                None
            }
        },
    };
    if !refusals.is_empty() {
        report.errors.extend(refusals);
        report.sort();
        return Ok(outcome(report));
    }

    let to_write = match reviewer.review(&report)? {
        Accepted::All => report.changes.iter().map(|c| c.path.clone()).collect(),
        Accepted::Trails(trails) => select_trails(settings, &mut report, &trails),
    };
    apply(&mut report, |change| to_write.contains(&change.path));
    let pr_body = record(apply_options, &mut report, prepared, &anchor);
    Ok(RunOutcome {
        report,
        reviewed: true,
        pr_body,
    })
}

fn outcome(report: Report) -> RunOutcome {
    RunOutcome {
        report,
        ..RunOutcome::default()
    }
}

/// Keeps the accepted trails' fixes: a module whose selected trails were all accepted keeps
/// its changes, one with none accepted is left out, and one with some accepted is planned
/// again with those only (its findings, changes and new errors replace the old). Returns the
/// paths of the changes to write.
fn select_trails(
    settings: &crate::Settings,
    report: &mut Report,
    accepted: &BTreeSet<(PathBuf, String)>,
) -> BTreeSet<PathBuf> {
    let modules: BTreeSet<PathBuf> = report.changes.iter().map(module_of).collect();
    let mut to_write = BTreeSet::new();
    for module in modules {
        let in_module = |path: &Path| parent_of(path) == module;
        let selected: Vec<(PathBuf, String)> = report
            .findings
            .iter()
            .filter(|f| in_module(&f.path) && f.fix.as_ref().is_some_and(|fix| fix.selected))
            .map(|f| (f.path.clone(), f.resource.clone()))
            .collect();
        let keep: BTreeSet<String> = selected
            .iter()
            .filter(|trail| accepted.contains(*trail))
            .map(|(_, address)| address.clone())
            .collect();
        if keep.is_empty() {
            continue;
        }
        if keep.len() == selected.len() {
            to_write.extend(
                report
                    .changes
                    .iter()
                    .filter(|c| module_of(c) == module)
                    .map(|c| c.path.clone()),
            );
            continue;
        }
        let mut files: Vec<PathBuf> = report
            .findings
            .iter()
            .filter(|f| in_module(&f.path))
            .map(|f| f.path.clone())
            .collect();
        files.sort();
        files.dedup();
        let replanned = crate::check_trails(settings, &files, &keep);
        report.findings.retain(|f| !in_module(&f.path));
        report.findings.extend(replanned.findings);
        report.changes.retain(|c| module_of(c) != module);
        to_write.extend(replanned.changes.iter().map(|c| c.path.clone()));
        report.changes.extend(replanned.changes);
        for error in replanned.errors {
            if !report.errors.contains(&error) {
                report.errors.push(error);
            }
        }
    }
    report.sort();
    to_write
}

/// The directory of a path (`.` for a bare file name).
fn parent_of(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The directory of a change: its module (a module's files all live in one).
pub fn module_of(change: &FileChange) -> PathBuf {
    change
        .path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Commits, pushes and writes the pull-request body, as asked, once the files are written.
/// A failure becomes an error of the report (about `anchor`, the path the user gave); the
/// written files stay written. Returns where the body was written: only when a file was.
fn record(
    options: &ApplyOptions,
    report: &mut Report,
    prepared: Option<vcs::PreparedCommit>,
    anchor: &Path,
) -> Option<PathBuf> {
    let written: Vec<&Path> = report
        .changes
        .iter()
        .filter(|c| c.written)
        .map(|c| c.path.as_path())
        .collect();
    if written.is_empty() {
        // Every change declined or failed: nothing to commit or describe.
        return None;
    }
    let failed = report
        .changes
        .iter()
        .filter(|c| !c.written && report.errors.iter().any(|e| e.path == c.path))
        .count();
    let mut errors = Vec::new();
    if let Some(prepared) = prepared {
        if failed > 0 {
            errors.push(format!(
                "{failed} file{} could not be written, so nothing was committed; the written files stay as they are",
                if failed == 1 { "" } else { "s" }
            ));
        } else {
            let message = pull_request::commit_message(report, Some(prepared.root()));
            match vcs::commit(&prepared, &written, &message) {
                Ok(mut committed) => {
                    if let Err(error) = vcs::push(&prepared, &mut committed) {
                        errors.push(format!("the commit was made but not pushed: {error}"));
                    }
                    report.committed = Some(committed);
                }
                Err(error) => {
                    errors.push(format!("the fixes were written but not committed: {error}"));
                }
            }
        }
    }
    report.errors.extend(
        errors
            .into_iter()
            .map(|message| FileError::new(anchor, message)),
    );
    let path = options.pr_body.as_deref()?;
    let body = pull_request::body(report, report.committed.as_ref());
    match std::fs::write(path, body) {
        Ok(()) => Some(path.to_path_buf()),
        Err(error) => {
            report.errors.push(FileError::new(
                path,
                format!("cannot write the pull-request body: {error}"),
            ));
            None
        }
    }
}
