//! One repository's run, as plain data in and out: [`RunOptions`] → [`RunOutcome`].
//!
//! Check; with `--apply`, everything that can refuse is checked before the first write; a
//! [`Reviewer`] chooses what to write (all of it for `--yes`, a person's answers otherwise);
//! the chosen changes are written; then commit, push and the pull-request body, as asked.
//! Nothing here prints: the command line, a fleet run or a bot reads the outcome.
//!
//! With `--branch NAME` an existing branch is judged first ([`crate::git::branch`]): a
//! branch of ctfix's own is rebuilt on the base and pushed with a lease, a person's edits,
//! a declined pull request or a base that holds the fixes stop the run before anything is
//! written, with the branch's state in the report. With `--pr` the pull request is found
//! before writing and opened or updated after the push ([`crate::git::github`]).

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use crate::git::branch::{self, Inspected, Verdict};
use crate::git::github::{self, Client, Forge};
use crate::model::{
    BranchState, Committed, FileChange, FileError, PullRequest, PullRequestAction, Report,
};
use crate::{apply, check, pull_request, vcs, write, Settings};

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
    /// The branch `branch` is based on (`--base`): the one checked out, named to be sure.
    pub base: Option<String>,
    /// Open or update the pull request through the API (`--pr`, with `branch` and `push`).
    pub pull_request: Option<Box<PullRequestOptions>>,
}

/// How `--pr` opens the pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestOptions {
    /// The API, the token and the repository.
    pub forge: Forge,
    /// Open it as a draft (`--draft`).
    pub draft: bool,
    /// Labels to add when opening it (`--label`).
    pub labels: Vec<String>,
    /// Rebuild the branch and open a new pull request even when the last one was closed
    /// without merging (`--recreate`).
    pub recreate: bool,
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
    // An existing --branch is judged before anything is written.
    let bot = match judge(apply_options, &anchor, &mut report) {
        Ok(Judged::Go(bot)) => bot,
        Ok(Judged::Stop) => return Ok(outcome(report)),
        Err(error) => {
            report.errors.push(FileError::new(
                &anchor,
                format!("{error}; nothing was written"),
            ));
            report.sort();
            return Ok(outcome(report));
        }
    };
    if report.changes.is_empty() {
        if let Some(CommitOptions {
            branch: Some(branch),
            push: Some(remote),
            ..
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
    // What the body's file holds now: it is replaced only if it still holds that.
    let mut body_before = None;
    if let Some(path) = &apply_options.pr_body {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        match body_file(path) {
            _ if !dir.is_dir() => refusals.push(FileError::new(
                path,
                "cannot write the pull-request body here: the directory does not exist; nothing was written",
            )),
            Ok(before) => body_before = before,
            Err(reason) => refusals.push(FileError::new(
                path,
                format!("cannot write the pull-request body here: {reason}; nothing was written"),
            )),
        }
    }
    let to_write: Vec<&Path> = report.changes.iter().map(|c| c.path.as_path()).collect();
    let prepared = match &apply_options.commit {
        Some(commit) => {
            let prepared = match (&bot, commit.branch.as_deref()) {
                (Some(bot), Some(branch)) if bot.rebuilds() => {
                    vcs::prepare_rebuild(&to_write, branch, commit.push.as_deref()).map(|p| {
                        p.replacing(vcs::Lease {
                            seen: bot.inspected.remote_seen,
                        })
                    })
                }
                _ => {
                    vcs::prepare_commit(&to_write, commit.branch.as_deref(), commit.push.as_deref())
                }
            };
            match prepared {
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
    let pr_body = record(
        apply_options,
        &mut report,
        prepared,
        bot,
        &anchor,
        body_before.as_deref(),
    );
    Ok(RunOutcome {
        report,
        reviewed: true,
        pr_body,
    })
}

/// What `--pr-body`'s file holds now, if it exists and may be replaced: only an empty file or a
/// body an earlier run wrote is overwritten, never a file of the user's (a README, a `.tf`).
fn body_file(path: &Path) -> Result<Option<Vec<u8>>, String> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.is_empty() || bytes.starts_with(pull_request::BODY_START.as_bytes()) => {
            Ok(Some(bytes))
        }
        Ok(_) => Err(format!(
            "the file exists and is not a pull-request body ctfix wrote (they begin \"{}\"); ctfix does not overwrite it: name a new file, or remove this one",
            pull_request::BODY_START.trim_end()
        )),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(_) if path.is_dir() => Err("it is a directory".to_owned()),
        Err(error) => Err(format!("cannot read it: {error}")),
    }
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

/// A change's module: the one whose fixes planned it (its changes are written together, see
/// [`apply`]).
pub fn module_of(change: &FileChange) -> PathBuf {
    change.module.clone()
}

/// Commits, pushes and writes the pull-request body, as asked, once the files are written.
/// A failure becomes an error of the report (about `anchor`, the path the user gave); the
/// written files stay written. Returns where the body was written: only when a file was.
fn record(
    options: &ApplyOptions,
    report: &mut Report,
    prepared: Option<vcs::PreparedCommit>,
    bot: Option<Box<Bot>>,
    anchor: &Path,
    body_before: Option<&[u8]>,
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
            let message =
                branch::with_trailer(&pull_request::commit_message(report, Some(prepared.root())));
            match vcs::commit(&prepared, &written, &message) {
                Ok(mut committed) => {
                    let up_to_date = match &bot {
                        Some(bot) => bot.settle(&mut committed),
                        None => Ok(false),
                    };
                    match up_to_date {
                        Ok(true) => {}
                        Ok(false) => {
                            if let Err(error) = vcs::push(&prepared, &mut committed) {
                                let unread = bot
                                    .as_ref()
                                    .and_then(|bot| bot.inspected.remote_error.as_deref())
                                    .map(|e| format!(" (before writing, ctfix could not read the remote: {e})"))
                                    .unwrap_or_default();
                                errors.push(format!(
                                    "the commit was made but not pushed: {error}{unread}"
                                ));
                            }
                        }
                        Err(error) => errors.push(format!("the commit was made but {error}")),
                    }
                    if let Some(bot) = &bot {
                        if committed.pushed_to.is_some() {
                            if let Err(error) = bot.open_pull_request(report, &mut committed) {
                                errors.push(format!("the pull request: {error}"));
                            }
                        }
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
    let written = match body_before {
        // An earlier body (or an empty file), replaced only if it is still what was read.
        Some(before) => {
            write::write_atomically(path, before, body.as_bytes()).map_err(|error| error.message)
        }
        // A new file, which must still not exist.
        None => std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .and_then(|mut file| std::io::Write::write_all(&mut file, body.as_bytes()))
            .map_err(|error| error.to_string()),
    };
    match written {
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

/// What judging `--branch` decided.
enum Judged {
    /// Go on (with the bot's context when the branch rules apply).
    Go(Option<Box<Bot>>),
    /// The report says what happened to the branch; write nothing.
    Stop,
}

/// A `--branch` run under the bot's rules: the branch as ctfix found it, and the pull
/// requests whose head it is.
struct Bot {
    inspected: Inspected,
    branch: String,
    /// The remote to push to (`--push`).
    remote: Option<String>,
    client: Option<(Client, PullRequestOptions)>,
    /// The open pull request whose head is the branch, if any.
    open: Option<github::Found>,
}

impl Bot {
    /// Whether the commit replaces an existing branch of ctfix's.
    fn rebuilds(&self) -> bool {
        matches!(self.inspected.verdict, Verdict::Ours { .. })
    }

    /// After the commit: names the branch's state, and when the rebuilt tree equals the
    /// branch's, points the branch back at its commit (`Ok(true)`: nothing to push).
    fn settle(&self, committed: &mut Committed) -> Result<bool, String> {
        let Verdict::Ours { tip } = self.inspected.verdict else {
            committed.branch_state = Some(BranchState::Created);
            return Ok(false);
        };
        committed.branch_state = Some(BranchState::Updated);
        let same = branch::same_tree(&self.inspected.root, &committed.commit, tip)
            .map_err(|e| e.to_string())?;
        let remote_has_it = self.inspected.remote_seen == Some(tip);
        if !same || (self.remote.is_some() && !remote_has_it) {
            return Ok(false);
        }
        branch::point_at(&self.inspected.root, &self.branch, tip).map_err(|e| e.to_string())?;
        committed.commit = tip.to_string();
        committed.branch_state = Some(BranchState::UpToDate);
        if remote_has_it {
            committed.pushed_to = self.remote.clone();
        }
        Ok(true)
    }

    /// Opens the pull request, or updates the open one (title and body).
    fn open_pull_request(&self, report: &Report, committed: &mut Committed) -> Result<(), String> {
        let Some((client, options)) = &self.client else {
            return Ok(());
        };
        let state = serde_json::json!({
            "version": 1,
            "branch": self.branch,
            "base": self.inspected.base,
        });
        let body = github::body_with_marker(&pull_request::body(report, Some(committed)), &state);
        let title = pull_request::TITLE;
        let (found, action) = match &self.open {
            Some(open) if open.title == title && open.body == body => {
                (open.clone(), PullRequestAction::Unchanged)
            }
            Some(open) => (
                client
                    .update(open.number, title, &body)
                    .map_err(|e| e.to_string())?,
                PullRequestAction::Updated,
            ),
            None => {
                let found = client
                    .create(
                        &self.branch,
                        &self.inspected.base,
                        title,
                        &body,
                        options.draft,
                    )
                    .map_err(|e| e.to_string())?;
                committed.pull_request = Some(PullRequest {
                    number: found.number,
                    url: found.url.clone(),
                    action: PullRequestAction::Created,
                });
                client
                    .add_labels(found.number, &options.labels)
                    .map_err(|e| e.to_string())?;
                (found, PullRequestAction::Created)
            }
        };
        committed.pull_request = Some(PullRequest {
            number: found.number,
            url: found.url,
            action,
        });
        Ok(())
    }
}

/// Judges an existing `--branch` before anything is written: edited, declined and
/// nothing-to-do stop the run with the branch's state in the report; a branch of ctfix's own
/// is rebuilt. Without `--branch`, or outside the bot's rules, the run goes on as before.
fn judge(options: &ApplyOptions, anchor: &Path, report: &mut Report) -> Result<Judged, String> {
    let Some(CommitOptions {
        branch: Some(name),
        push,
        base,
        pull_request,
    }) = &options.commit
    else {
        return Ok(Judged::Go(None));
    };
    let Some(inspected) = branch::inspect(anchor, name, push.as_deref(), base.as_deref())
        .map_err(|e| e.to_string())?
    else {
        return Ok(Judged::Go(None));
    };
    let root = inspected.root.clone();
    let left = |state: BranchState, tip: Option<git2::Oid>| Committed {
        repository: root.clone(),
        branch: name.clone(),
        commit: tip.map(|t| t.to_string()).unwrap_or_default(),
        files: 0,
        pushed_to: None,
        branch_state: Some(state),
        pull_request: None,
    };
    let tip = match &inspected.verdict {
        Verdict::CheckedOut => return Ok(Judged::Go(None)),
        // Nothing to write: the run goes on as before (it commits nothing).
        Verdict::NotOurs if report.changes.is_empty() => return Ok(Judged::Go(None)),
        Verdict::NotOurs => {
            return Err(format!(
                "branch {name} already exists in {} and is not ctfix's (none of its commits since it left {} carries the trailer \"{}\"); choose another name or delete it",
                inspected.root.display(),
                inspected.base,
                branch::TRAILER
            ))
        }
        Verdict::New => None,
        Verdict::Ours { tip } | Verdict::Edited { tip, .. } => Some(*tip),
    };
    if let (Some(tip), true) = (tip, report.changes.is_empty()) {
        // The base holds the fixes already: the pull request was merged (or someone fixed it).
        report.committed = Some(left(BranchState::NothingToDo, Some(tip)));
        return Ok(Judged::Stop);
    }
    if let Verdict::Edited { tip, .. } = &inspected.verdict {
        report.committed = Some(left(BranchState::Edited, Some(*tip)));
        return Ok(Judged::Stop);
    }
    let mut bot = Bot {
        branch: name.clone(),
        remote: push.clone(),
        client: None,
        open: None,
        inspected,
    };
    if let (Some(pr), Some(remote), false) = (pull_request, push, report.changes.is_empty()) {
        let repository = match &pr.forge.repository {
            Some(repository) => repository.clone(),
            None => branch::remote_url(&bot.inspected.root, remote)
                .as_deref()
                .and_then(github::repository_from_url)
                .ok_or_else(|| {
                    format!("--pr: cannot tell the GitHub repository from remote {remote}'s URL; set GITHUB_REPOSITORY=owner/name")
                })?,
        };
        let client = Client::new(&pr.forge, &repository).map_err(|e| e.to_string())?;
        let found = client.find(name).map_err(|e| e.to_string())?;
        bot.open = found.iter().find(|p| p.open).cloned();
        let last_ours = found.iter().find(|p| p.is_ctfix());
        if let (None, Some(closed), false) = (&bot.open, last_ours, pr.recreate) {
            if !closed.open && !closed.merged {
                let mut committed = left(BranchState::Declined, tip);
                committed.pull_request = Some(PullRequest {
                    number: closed.number,
                    url: closed.url.clone(),
                    action: PullRequestAction::Unchanged,
                });
                report.committed = Some(committed);
                return Ok(Judged::Stop);
            }
        }
        bot.client = Some((client, (**pr).clone()));
    }
    Ok(Judged::Go(Some(Box::new(bot))))
}

/// The changes one trail's fix makes on its own: its module's changes when it is the
/// module's only selected fix, else the module planned again with this trail only.
pub fn trail_changes(
    report: &Report,
    settings: &crate::Settings,
    finding: &crate::Finding,
) -> Vec<FileChange> {
    let module = finding
        .path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let in_module =
        |path: &Path| path.parent().map(Path::to_path_buf).unwrap_or_default() == module;
    let selected_here = report
        .findings
        .iter()
        .filter(|f| in_module(&f.path) && f.fix.as_ref().is_some_and(|fix| fix.selected))
        .count();
    if selected_here <= 1 {
        return report
            .changes
            .iter()
            .filter(|c| module_of(c) == module)
            .cloned()
            .collect();
    }
    let mut files: Vec<PathBuf> = report
        .findings
        .iter()
        .filter(|f| in_module(&f.path))
        .map(|f| f.path.clone())
        .collect();
    files.sort();
    files.dedup();
    crate::check_trails(
        settings,
        &files,
        &BTreeSet::from([finding.resource.clone()]),
    )
    .changes
}
