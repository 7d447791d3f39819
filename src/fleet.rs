//! Fleet runs: many repositories in one run, each exactly as a single-repository run.
//!
//! The repositories come from the paths on the command line (grouped by the git repository
//! around each) or from a `--repos` file (local paths and clone URLs). Clone URLs are cloned
//! into a work directory, one directory per URL, and fetched again on the next run. Each
//! repository then goes through [`crate::run::run`] — the same checks, refusals, writes,
//! commit, push and pull-request body as a run in that repository alone — on `jobs` worker
//! threads. A failure in one repository is that repository's outcome only.
//!
//! Memory stays flat in the number of repositories: a finished repository's report is written
//! to a spool file in the output format and dropped; only its [`Row`] stays. The spool files
//! are printed in the input order at the end, so the output does not depend on `jobs`.
//!
//! [`interrupt`] (the binary's Ctrl-C handler) stops starting repositories; those in progress
//! finish, so each repository ends untouched or with its complete commit.

mod clone;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use serde::Serialize;
use serde_json::json;

use crate::model::{FileError, Report, Status};
use crate::render::display_path;
use crate::report::{write_text, TextOptions};
use crate::run::{AcceptAll, Mode, RunOptions};
use crate::ExitStatus;

/// Set while a fleet run is going: Ctrl-C then stops starting repositories instead of ending
/// the process.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Set by [`interrupt`]: no repository may start any more.
static CANCELLED: AtomicBool = AtomicBool::new(false);

/// For the Ctrl-C handler: during a fleet run, the first interrupt stops starting repositories
/// and lets those in progress finish (so each ends untouched or complete), and returns `true`;
/// the handler should then do nothing else. Returns `false` outside a fleet run and on a
/// second interrupt, when the handler falls back to stopping the writes.
pub fn interrupt() -> bool {
    ACTIVE.load(Ordering::SeqCst) && !CANCELLED.swap(true, Ordering::SeqCst)
}

/// Something that stops a fleet run before any repository starts.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// A line of the `--repos` file is not a repository.
    #[error("{}:{line}: {message}", display_path(file))]
    Line {
        /// The `--repos` file.
        file: PathBuf,
        /// 1-based.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// The `--repos` file cannot be read.
    #[error("cannot read {}: {source}", display_path(file))]
    Read {
        /// The `--repos` file.
        file: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The options do not fit a fleet run.
    #[error("{0}")]
    Options(String),
}

/// Where a repository comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A working directory on this machine, and the paths to check in it.
    Local {
        /// The repository's working directory (or the path itself outside any repository).
        root: PathBuf,
        /// The paths to check, as given.
        paths: Vec<PathBuf>,
    },
    /// A repository to clone (or fetch again) into the work directory.
    Url(String),
}

impl Source {
    /// How the repository is named in the table and the machine output.
    pub fn name(&self) -> String {
        match self {
            Source::Local { root, .. } => {
                // Relative to the current directory when inside it, as paths are shown.
                let cwd = std::env::current_dir()
                    .ok()
                    .and_then(|cwd| std::fs::canonicalize(cwd).ok());
                match cwd.as_deref().and_then(|cwd| root.strip_prefix(cwd).ok()) {
                    Some(inside) if !inside.as_os_str().is_empty() => display_path(inside),
                    _ => display_path(root),
                }
            }
            Source::Url(url) => redacted(url),
        }
    }
}

use crate::vcs::{head_of, redacted, switch_to, Head};

/// Reads a `--repos` file: one repository per line, a local path (relative to the file's
/// directory) or a clone URL (`https://`, `http://`, `ssh://`, `git://`, `file://`, or
/// scp-like `user@host:path`). Blank lines and lines starting with `#` are skipped. The
/// first malformed line is an error naming it.
pub fn read_repos_file(file: &Path) -> Result<Vec<Source>, FleetError> {
    let text = std::fs::read_to_string(file).map_err(|source| FleetError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    let base = file.parent().unwrap_or(Path::new(""));
    let mut sources = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let entry = line.trim();
        if entry.is_empty() || entry.starts_with('#') {
            continue;
        }
        let bad = |message: String| FleetError::Line {
            file: file.to_path_buf(),
            line: line_no,
            message,
        };
        let source = parse_entry(entry, base).map_err(bad)?;
        // One repository however it is written: `dd`, `./dd`, `dd/`, its absolute path; a
        // URL with or without `.git`, a trailing `/` or credentials.
        // Two directories of one repository are one repository too: their runs would share
        // a working tree and a branch.
        let key = match &source {
            Source::Local { root, .. } => repository_root(root)
                .or_else(|| std::fs::canonicalize(root).ok())
                .unwrap_or_else(|| root.clone())
                .to_string_lossy()
                .into_owned(),
            Source::Url(url) => redacted(url)
                .trim_end_matches('/')
                .trim_end_matches(".git")
                .to_owned(),
        };
        if let Some(first) = seen.insert(key, line_no) {
            return Err(bad(format!(
                "{} is already on line {first} (the same repository); list each repository once",
                redacted(entry)
            )));
        }
        sources.push(source);
    }
    Ok(sources)
}

const SCHEMES: &[&str] = &["https", "http", "ssh", "git", "file"];

fn parse_entry(entry: &str, base: &Path) -> Result<Source, String> {
    if let Some((scheme, rest)) = entry.split_once("://") {
        let shown = redacted(entry);
        if !SCHEMES.contains(&scheme) {
            return Err(format!(
                "{shown}: unknown URL scheme {scheme:?} (use https://, ssh://, git://, file:// or a local path)"
            ));
        }
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || (scheme != "file" && !rest.contains('/')) {
            return Err(format!("{shown}: the URL names no repository"));
        }
        if entry.chars().any(char::is_whitespace) {
            return Err(format!("{shown}: a URL cannot hold spaces"));
        }
        return Ok(Source::Url(entry.to_owned()));
    }
    // scp-like `user@host:path`: a colon before any slash, after a user.
    if let (Some(colon), Some(at)) = (entry.find(':'), entry.find('@')) {
        if at < colon && entry.find('/').is_none_or(|slash| colon < slash) {
            if entry[colon + 1..].is_empty() || entry.chars().any(char::is_whitespace) {
                return Err(format!("{entry}: the SSH address names no repository"));
            }
            return Ok(Source::Url(entry.to_owned()));
        }
    }
    let path = base.join(entry);
    if !path.is_dir() {
        return Err(format!(
            "{entry}: neither a URL nor a directory ({} does not exist or is not a directory)",
            display_path(&path)
        ));
    }
    Ok(Source::Local {
        root: path.clone(),
        paths: vec![path],
    })
}

/// The git working directory around `path`; `None` outside any repository.
fn repository_root(path: &Path) -> Option<PathBuf> {
    let absolute = std::fs::canonicalize(path).ok()?;
    let dir = if absolute.is_dir() {
        absolute.as_path()
    } else {
        absolute.parent()?
    };
    let repo = git2::Repository::discover(dir).ok()?;
    let workdir = repo.workdir()?;
    Some(std::fs::canonicalize(workdir).unwrap_or_else(|_| workdir.to_path_buf()))
}

/// Groups command-line paths by the git repository around each, in the order of their first
/// path. A path outside any repository is its own group (a commit there is refused, as in a
/// single run). Returns one group for paths that all lie in one repository.
pub fn group_paths(paths: &[PathBuf]) -> Vec<Source> {
    let mut groups: Vec<Source> = Vec::new();
    for path in paths {
        let root = repository_root(path).unwrap_or_else(|| path.clone());
        match groups
            .iter_mut()
            .find(|g| matches!(g, Source::Local { root: r, .. } if *r == root))
        {
            Some(Source::Local { paths, .. }) => paths.push(path.clone()),
            _ => groups.push(Source::Local {
                root,
                paths: vec![path.clone()],
            }),
        }
    }
    groups
}

/// The default work directory for clones: `$XDG_CACHE_HOME/ctfix/repos`, else
/// `~/.cache/ctfix/repos`.
pub fn default_workdir() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|dir| Path::new(dir).is_absolute())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join("ctfix").join("repos")
}

/// The clone directory of `url` in `workdir`: readable (the URL's host and path) and unique
/// (a hash of the whole URL), the same on every run.
pub fn clone_dir(workdir: &Path, url: &str) -> PathBuf {
    // Named without the credentials: they are no part of a path, and a new token is the
    // same repository.
    let shown = redacted(url);
    let url = shown.as_str();
    let readable: String = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .trim_end_matches('/')
        .trim_end_matches(".git")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let readable = readable.trim_matches('-');
    let tail: String = {
        let chars: Vec<char> = readable.chars().collect();
        chars[chars.len().saturating_sub(60)..].iter().collect()
    };
    // FNV-1a: stable across Rust releases, unlike the standard library's hasher.
    let hash = url.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    workdir.join(format!("{tail}-{:08x}", hash as u32))
}

/// What one fleet run should do.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// The repositories, in the order they are reported.
    pub sources: Vec<Source>,
    /// What every repository's run does; its paths are replaced by each repository's.
    pub run: RunOptions,
    /// Where clones live.
    pub workdir: PathBuf,
    /// Repositories processed at once.
    pub jobs: usize,
    /// The output format of each repository's report.
    pub format: Output,
    /// Read each repository's own `.ctfix.toml` (`None`: `--config` gave one for all).
    pub repository_config: Option<RepositoryConfig>,
}

/// How a repository's own `.ctfix.toml` combines with the command line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepositoryConfig {
    /// `--unsafe-fixes` (`Some(true)`) or `--no-unsafe-fixes` (`Some(false)`): flags override
    /// the file.
    pub unsafe_fixes: Option<bool>,
}

/// The settings of one repository's run: the fleet's, with the repository's own
/// `.ctfix.toml` applied when asked (its generated-key options, exclusions and unsafe-fixes).
fn repository_settings(
    options: &FleetOptions,
    paths: &[PathBuf],
) -> Result<crate::Settings, String> {
    let mut settings = crate::Settings {
        paths: paths.to_vec(),
        ..options.run.settings.clone()
    };
    let Some(repository) = options.repository_config else {
        return Ok(settings);
    };
    let Some(config) = crate::config::find_for_paths(paths).map_err(|e| e.to_string())? else {
        return Ok(settings);
    };
    config.apply_to(&mut settings, repository.unsafe_fixes);
    Ok(settings)
}

/// The repositories of a fleet run: those `repos` lists (`--repos FILE`), or the
/// repositories of `paths` when a commit is asked of paths in several. `None` for a
/// single-repository run.
pub fn sources(
    repos: Option<&Path>,
    paths: &[PathBuf],
    committing: bool,
) -> Result<Option<Vec<Source>>, FleetError> {
    if let Some(file) = repos {
        if paths != [PathBuf::from(".")] {
            return Err(FleetError::Options(
                "--repos FILE lists the repositories; give no paths with it".to_owned(),
            ));
        }
        let sources = read_repos_file(file)?;
        if sources.is_empty() {
            return Err(FleetError::Options(format!(
                "{} lists no repositories",
                display_path(file)
            )));
        }
        return Ok(Some(sources));
    }
    if !committing || paths.len() < 2 {
        return Ok(None);
    }
    let groups = group_paths(paths);
    Ok((groups.len() > 1).then_some(groups))
}

/// How each repository's report is printed (the table comes after, in text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The single-run text report per repository (findings, diffs), then the table.
    Text(TextOptions),
    /// `{"version", "repositories": [..], "summary"}`.
    Json,
    /// One SARIF log, one run per repository.
    Sarif,
}

/// The `--pr-body` placeholder a fleet run replaces with each repository's name.
pub const REPO_PLACEHOLDER: &str = "{repo}";

/// What happened to a repository's branch: a single run's [`crate::BranchState`], or what
/// kept the repository from getting one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RowState {
    /// A new branch and commit were made (and pushed, if asked).
    Created,
    /// ctfix's branch was rebuilt on the base with one new commit.
    Updated,
    /// The branch already held these fixes: nothing pushed.
    UpToDate,
    /// Someone else committed on the branch: left alone.
    Edited,
    /// ctfix's pull request was closed without merging: left alone.
    Declined,
    /// Nothing to fix.
    NothingToDo,
    /// A dry run: there are fixes to write.
    WouldChange,
    /// An error kept the run from committing; the repository was left as it was, or holds the
    /// commit that could not be pushed.
    Failed,
    /// Ctrl-C came before the repository started.
    NotStarted,
}

impl From<crate::BranchState> for RowState {
    fn from(state: crate::BranchState) -> RowState {
        match state {
            crate::BranchState::Created => RowState::Created,
            crate::BranchState::Updated => RowState::Updated,
            crate::BranchState::UpToDate => RowState::UpToDate,
            crate::BranchState::Edited => RowState::Edited,
            crate::BranchState::Declined => RowState::Declined,
            crate::BranchState::NothingToDo => RowState::NothingToDo,
        }
    }
}

impl RowState {
    /// The kebab-case name used in the table and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            RowState::Created => "created",
            RowState::Updated => "updated",
            RowState::UpToDate => "up-to-date",
            RowState::Edited => "edited",
            RowState::Declined => "declined",
            RowState::NothingToDo => "nothing-to-do",
            RowState::WouldChange => "would-change",
            RowState::Failed => "failed",
            RowState::NotStarted => "not-started",
        }
    }
}

/// A finished repository: all a fleet run keeps of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// The repository's name (its working directory or URL).
    pub repository: String,
    /// `aws_cloudtrail` blocks found.
    pub trails: usize,
    /// Trails fixed (in a dry run: that would be fixed).
    pub fixed: usize,
    /// Noncompliant or unknown trails no fix was written for: a person must look.
    pub left: usize,
    /// Error messages, each with its path.
    pub errors: Vec<String>,
    /// What happened to the branch.
    pub branch_state: RowState,
    /// The commit made or found, if any.
    pub commit: Option<String>,
    /// The pull request (for now: where its body was written), if any.
    pub pull_request: Option<String>,
    /// The repository's exit status.
    #[serde(skip)]
    pub status: ExitStatus,
}

impl Row {
    fn not_started(repository: String) -> Row {
        Row {
            repository,
            trails: 0,
            fixed: 0,
            left: 0,
            errors: Vec::new(),
            branch_state: RowState::NotStarted,
            commit: None,
            pull_request: None,
            status: ExitStatus::Error,
        }
    }

    fn of(repository: String, report: &Report, applied: bool, pr_body: Option<&Path>) -> Row {
        let fixed = report
            .findings
            .iter()
            .filter(|f| {
                f.fix
                    .as_ref()
                    .is_some_and(|fix| if applied { fix.applied } else { fix.selected })
            })
            .count();
        let left = report
            .findings
            .iter()
            .filter(|f| matches!(f.status, Status::Noncompliant | Status::Unknown))
            .filter(|f| {
                !f.fix
                    .as_ref()
                    .is_some_and(|fix| if applied { fix.applied } else { fix.selected })
            })
            .count();
        let written = report.changes.iter().any(|c| c.written);
        let reported = report.committed.as_ref().and_then(|c| c.branch_state);
        let branch_state = if let Some(state) = reported.filter(|_| report.errors.is_empty()) {
            state.into()
        } else if !applied {
            if !report.errors.is_empty() {
                RowState::Failed
            } else if report.changes.is_empty() {
                RowState::NothingToDo
            } else {
                RowState::WouldChange
            }
        } else if report.committed.is_some() && written {
            if report.errors.is_empty() {
                RowState::Created
            } else {
                RowState::Failed
            }
        } else if !report.errors.is_empty() {
            RowState::Failed
        } else if report.committed.is_some() {
            RowState::UpToDate
        } else {
            RowState::NothingToDo
        };
        Row {
            repository,
            trails: report.findings.len(),
            fixed,
            left,
            errors: report.errors.iter().map(ToString::to_string).collect(),
            branch_state,
            commit: report.committed.as_ref().map(|c| c.commit.clone()),
            pull_request: report
                .committed
                .as_ref()
                .and_then(|c| c.pull_request.as_ref())
                .map(|pr| pr.url.clone())
                .or_else(|| pr_body.map(display_path)),
            status: ExitStatus::of(report),
        }
    }
}

/// What a fleet run did: one row per repository, in the input order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetOutcome {
    /// One per repository.
    pub rows: Vec<Row>,
    /// Whether Ctrl-C stopped the run before every repository started.
    pub interrupted: bool,
}

impl FleetOutcome {
    /// The worst repository's exit status (an interrupted run is an error: it is not done).
    pub fn status(&self) -> ExitStatus {
        self.rows
            .iter()
            .map(|row| row.status)
            .max()
            .unwrap_or(ExitStatus::Clean)
    }
}

/// Told, on the calling thread, when repositories start and finish (a progress bar).
pub trait Progress {
    /// Repository `index` (named `name`) started.
    fn started(&mut self, index: usize, name: &str);
    /// Repository `index` finished.
    fn finished(&mut self, index: usize, row: &Row);
    /// Every repository finished or was kept from starting; the reports are printed next.
    fn done(&mut self) {}
}

/// A [`Progress`] that shows nothing.
#[derive(Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn started(&mut self, _: usize, _: &str) {}
    fn finished(&mut self, _: usize, _: &Row) {}
}

enum Event {
    Started(usize),
    Finished(usize, Row),
}

/// Checks options that would make a fleet run refuse before anything starts.
pub fn validate(options: &FleetOptions) -> Result<(), FleetError> {
    if let Mode::Apply(apply) = &options.run.mode {
        if let Some(body) = &apply.pr_body {
            if options.sources.len() > 1 && !body.to_string_lossy().contains(REPO_PLACEHOLDER) {
                return Err(FleetError::Options(format!(
                    "--pr-body {}: with several repositories, each gets its own body; put {REPO_PLACEHOLDER} in the path (e.g. bodies/{REPO_PLACEHOLDER}.md), which becomes each repository's name",
                    display_path(body)
                )));
            }
        }
    }
    if options.jobs == 0 {
        return Err(FleetError::Options("--jobs must be at least 1".to_owned()));
    }
    Ok(())
}

/// Runs every repository, `options.jobs` at a time, writing each one's report to `out` in the
/// input order (JSON and SARIF wrapped as one document; text followed by nothing — the caller
/// prints the table with [`write_table`]). `Err` only when output fails.
pub fn run(
    options: &FleetOptions,
    progress: &mut dyn Progress,
    out: &mut dyn Write,
) -> io::Result<FleetOutcome> {
    ACTIVE.store(true, Ordering::SeqCst);
    let result = run_all(options, progress, out);
    ACTIVE.store(false, Ordering::SeqCst);
    result
}

fn run_all(
    options: &FleetOptions,
    progress: &mut dyn Progress,
    out: &mut dyn Write,
) -> io::Result<FleetOutcome> {
    let total = options.sources.len();
    let spool = tempfile::Builder::new().prefix("ctfix-fleet-").tempdir()?;
    let names = unique_names(&options.sources);
    let next = AtomicUsize::new(0);
    let delay = test_delay();
    let mut rows: Vec<Option<Row>> = vec![None; total];
    let (sender, receiver) = mpsc::channel::<Event>();
    std::thread::scope(|scope| {
        for _ in 0..options.jobs.min(total.max(1)) {
            let sender = sender.clone();
            let next = &next;
            let names = &names;
            let spool = spool.path();
            scope.spawn(move || loop {
                if CANCELLED.load(Ordering::SeqCst) {
                    break;
                }
                let index = next.fetch_add(1, Ordering::SeqCst);
                if index >= total {
                    break;
                }
                let _ = sender.send(Event::Started(index));
                if let Some(delay) = delay {
                    std::thread::sleep(delay);
                }
                let source = &options.sources[index];
                let row = run_one(options, source, &names[index], &spool_path(spool, index));
                let _ = sender.send(Event::Finished(index, row));
            });
        }
        drop(sender);
        for event in receiver {
            match event {
                Event::Started(index) => progress.started(index, &options.sources[index].name()),
                Event::Finished(index, row) => {
                    progress.finished(index, &row);
                    rows[index] = Some(row);
                }
            }
        }
    });
    progress.done();
    let interrupted = rows.iter().any(Option::is_none);
    let rows: Vec<Row> = rows
        .into_iter()
        .zip(&options.sources)
        .map(|(row, source)| row.unwrap_or_else(|| Row::not_started(source.name())))
        .collect();
    write_spooled(options, &rows, spool.path(), out)?;
    Ok(FleetOutcome { rows, interrupted })
}

/// `CTFIX_FLEET_TEST_DELAY_MS`: a pause before each repository, so tests can interrupt a run
/// part-way.
fn test_delay() -> Option<std::time::Duration> {
    std::env::var("CTFIX_FLEET_TEST_DELAY_MS")
        .ok()?
        .parse()
        .ok()
        .map(std::time::Duration::from_millis)
}

fn spool_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("{index:08}"))
}

/// A file-name-safe name per repository, for `{repo}` in `--pr-body`: the directory's or the
/// URL's last component, with a number added when two repositories share it.
fn unique_names(sources: &[Source]) -> Vec<String> {
    let mut taken: BTreeMap<String, usize> = BTreeMap::new();
    sources
        .iter()
        .map(|source| {
            let full = match source {
                Source::Local { root, .. } => root.to_string_lossy().into_owned(),
                Source::Url(url) => redacted(url),
            };
            let last = full
                .trim_end_matches('/')
                .trim_end_matches(".git")
                .rsplit(['/', ':', '\\'])
                .next()
                .unwrap_or("")
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect::<String>();
            let base = if last.is_empty() || last == "." || last == ".." {
                "repository".to_owned()
            } else {
                last
            };
            let count = taken.entry(base.clone()).or_insert(0);
            *count += 1;
            if *count == 1 {
                base
            } else {
                format!("{base}-{count}")
            }
        })
        .collect()
}

/// One repository: clone or fetch if needed, run, spool the report, keep the row.
fn run_one(options: &FleetOptions, source: &Source, name: &str, spool: &Path) -> Row {
    let display = source.name();
    let applied = matches!(options.run.mode, Mode::Apply(_));
    let (paths, report, pr_body) = match prepare(options, source) {
        Err(message) => {
            let report = Report {
                errors: vec![FileError::new(&display, message)],
                ..Report::default()
            };
            (Vec::new(), report, None)
        }
        Ok(paths) => {
            let settings = match repository_settings(options, &paths) {
                Ok(settings) => settings,
                Err(message) => {
                    let report = Report {
                        errors: vec![FileError::new(&display, message)],
                        ..Report::default()
                    };
                    return keep_row(options, display, applied, &paths, &report, None, spool);
                }
            };
            let mut run_options = RunOptions {
                settings,
                mode: options.run.mode.clone(),
            };
            if let Mode::Apply(apply) = &mut run_options.mode {
                if let Some(pr) = apply.commit.as_mut().and_then(|c| c.pull_request.as_mut()) {
                    // GITHUB_REPOSITORY names one repository: each takes its own remote's.
                    if options.sources.len() > 1 {
                        pr.forge.repository = None;
                    }
                }
                if let Some(body) = &apply.pr_body {
                    apply.pr_body = Some(PathBuf::from(
                        body.to_string_lossy().replace(REPO_PLACEHOLDER, name),
                    ));
                }
            }
            // A local checkout goes back to the branch it was on: left on the bot's branch,
            // next week's run would judge that branch instead of the base.
            let bot_branch = match (&run_options.mode, source) {
                (Mode::Apply(apply), Source::Local { root, .. }) => apply
                    .commit
                    .as_ref()
                    .and_then(|c| c.branch.clone())
                    .map(|branch| (root.clone(), branch)),
                _ => None,
            };
            let before = bot_branch.as_ref().and_then(|(root, _)| head_of(root));
            if let (Some((_, branch)), Some(before)) = (&bot_branch, &before) {
                if *before == Head::Branch(branch.clone()) {
                    let report = Report {
                        errors: vec![FileError::new(
                            &display,
                            format!("the checkout is on {branch}, ctfix's branch: switch it to its base (git switch <base>) so the fixes are computed there; nothing was written"),
                        )],
                        ..Report::default()
                    };
                    return keep_row(options, display, applied, &paths, &report, None, spool);
                }
            }
            let mut outcome = match crate::run::run(&run_options, &mut AcceptAll) {
                Ok(outcome) => (paths, outcome.report, outcome.pr_body),
                Err(error) => {
                    let report = Report {
                        errors: vec![FileError::new(&display, error.to_string())],
                        ..Report::default()
                    };
                    (paths, report, None)
                }
            };
            if let (Some((root, branch)), Some(before)) = (&bot_branch, &before) {
                if head_of(root) == Some(Head::Branch(branch.clone())) {
                    if let Err(error) = switch_to(root, before) {
                        outcome.1.errors.push(FileError::new(
                            &display,
                            format!("the fixes are committed on {branch}, but the checkout stays on it: {error}; switch it back to {before} before the next run"),
                        ));
                    }
                }
            }
            outcome
        }
    };
    let mut report = report;
    if let Source::Url(url) = source {
        // An error from the transport may quote the URL it was given, token included.
        if let Some(secret) = crate::vcs::url_userinfo(url) {
            for error in &mut report.errors {
                error.message = error.message.replace(secret, "***");
            }
        }
    }
    keep_row(
        options,
        display,
        applied,
        &paths,
        &report,
        pr_body.as_deref(),
        spool,
    )
}

/// The repository's summary row, its report spooled to disk until the end.
fn keep_row(
    options: &FleetOptions,
    display: String,
    applied: bool,
    paths: &[PathBuf],
    report: &Report,
    pr_body: Option<&Path>,
    spool: &Path,
) -> Row {
    let row = Row::of(display, report, applied, pr_body);
    if let Err(error) = spool_report(options.format, &row, paths, report, spool) {
        let mut row = row;
        row.errors
            .push(format!("cannot keep the report until the end: {error}"));
        row.status = ExitStatus::Error;
        return row;
    }
    row
}

/// The paths to check in a repository: as given, or its clone (made or brought up to date).
fn prepare(options: &FleetOptions, source: &Source) -> Result<Vec<PathBuf>, String> {
    match source {
        Source::Local { paths, .. } => Ok(paths.clone()),
        Source::Url(url) => {
            let dir = clone_dir(&options.workdir, url);
            clone::sync(url, &dir)?;
            Ok(vec![dir])
        }
    }
}

fn spool_report(
    format: Output,
    row: &Row,
    paths: &[PathBuf],
    report: &Report,
    spool: &Path,
) -> io::Result<()> {
    let mut file = BufWriter::new(File::create(spool)?);
    match format {
        Output::Json => {
            let mut value = crate::report::json_value(report);
            if let Some(object) = value.as_object_mut() {
                object.insert("repository".to_owned(), json!(row.repository));
                object.insert(
                    "paths".to_owned(),
                    json!(paths.iter().map(|p| display_path(p)).collect::<Vec<_>>()),
                );
                object.insert("branch_state".to_owned(), json!(row.branch_state));
                object.insert("pull_request".to_owned(), json!(row.pull_request));
            }
            serde_json::to_writer_pretty(&mut file, &value)?;
        }
        Output::Sarif => {
            let mut run = crate::sarif::sarif_run(report);
            run["automationDetails"] = json!({ "id": format!("ctfix/{}/", row.repository) });
            serde_json::to_writer_pretty(&mut file, &run)?;
        }
        Output::Text(text) => {
            // Findings and diffs per repository; errors come in the table's notes.
            let mut text_out = Vec::new();
            write_text(
                report,
                TextOptions {
                    summary: false,
                    ..text
                },
                &mut text_out,
                &mut io::sink(),
            )?;
            if !text_out.is_empty() {
                writeln!(file, "== {} ==", row.repository)?;
                file.write_all(&text_out)?;
                writeln!(file)?;
            }
        }
    }
    file.flush()
}

/// Prints the spooled reports in the input order, wrapped as one document.
fn write_spooled(
    options: &FleetOptions,
    rows: &[Row],
    spool: &Path,
    out: &mut dyn Write,
) -> io::Result<()> {
    let (start, separator, end) = match options.format {
        Output::Json => ("{\n\"version\": 1,\n\"repositories\": [\n", ",\n", "\n],\n"),
        Output::Sarif => (crate::sarif::LOG_START, ",\n", crate::sarif::LOG_END),
        Output::Text(_) => ("", "", ""),
    };
    out.write_all(start.as_bytes())?;
    let mut first = true;
    for (index, row) in rows.iter().enumerate() {
        let path = spool_path(spool, index);
        if row.branch_state == RowState::NotStarted || !path.exists() {
            continue;
        }
        if !first {
            out.write_all(separator.as_bytes())?;
        }
        first = false;
        io::copy(&mut File::open(&path)?, out)?;
        let _ = std::fs::remove_file(&path);
    }
    out.write_all(end.as_bytes())?;
    if options.format == Output::Json {
        let summary = FleetSummary::of(rows);
        out.write_all(b"\"summary\": ")?;
        serde_json::to_writer_pretty(&mut *out, &summary)?;
        out.write_all(b",\n\"table\": ")?;
        serde_json::to_writer_pretty(&mut *out, rows)?;
        out.write_all(b"\n}\n")?;
    }
    Ok(())
}

/// The fleet's totals (JSON `summary`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FleetSummary {
    /// Repositories listed.
    pub repositories: usize,
    /// Repositories that ran without an error.
    pub succeeded: usize,
    /// Repositories with an error.
    pub failed: usize,
    /// Repositories Ctrl-C kept from starting.
    pub not_started: usize,
    /// Trails found.
    pub trails: usize,
    /// Trails fixed (dry run: that would be fixed).
    pub fixed: usize,
    /// Trails left for a person.
    pub left: usize,
    /// Commits made.
    pub created: usize,
}

impl FleetSummary {
    /// Totals of the rows.
    pub fn of(rows: &[Row]) -> FleetSummary {
        let mut summary = FleetSummary {
            repositories: rows.len(),
            ..FleetSummary::default()
        };
        for row in rows {
            match row.branch_state {
                RowState::NotStarted => summary.not_started += 1,
                _ if !row.errors.is_empty() => summary.failed += 1,
                _ => summary.succeeded += 1,
            }
            if row.branch_state == RowState::Created {
                summary.created += 1;
            }
            summary.trails += row.trails;
            summary.fixed += row.fixed;
            summary.left += row.left;
        }
        summary
    }
}

/// Writes the table (one line per repository), each repository's errors, and a summary line.
pub fn write_table(outcome: &FleetOutcome, applied: bool, out: &mut dyn Write) -> io::Result<()> {
    let headers = [
        "REPOSITORY",
        "TRAILS",
        if applied { "FIXED" } else { "TO FIX" },
        "LEFT FOR A PERSON",
        "ERRORS",
        "BRANCH",
        "PULL REQUEST",
    ];
    let cells: Vec<[String; 7]> = outcome
        .rows
        .iter()
        .map(|row| {
            [
                row.repository.clone(),
                row.trails.to_string(),
                row.fixed.to_string(),
                row.left.to_string(),
                row.errors.len().to_string(),
                row.branch_state.as_str().to_owned(),
                row.pull_request.clone().unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for line in &cells {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut print = |line: &[String]| -> io::Result<()> {
        let mut text = String::new();
        for (i, (cell, width)) in line.iter().zip(widths).enumerate() {
            if i == line.len() - 1 {
                text.push_str(cell);
            } else if (1..=4).contains(&i) {
                text.push_str(&format!("{cell:>width$}  "));
            } else {
                text.push_str(&format!("{cell:<width$}  "));
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    print(&headers.map(str::to_owned))?;
    for line in &cells {
        print(line)?;
    }
    for row in outcome.rows.iter().filter(|row| !row.errors.is_empty()) {
        writeln!(out)?;
        writeln!(out, "{}:", row.repository)?;
        for error in &row.errors {
            writeln!(out, "  {error}")?;
        }
    }
    let summary = FleetSummary::of(&outcome.rows);
    writeln!(out)?;
    write!(
        out,
        "{} repositor{}: {} without errors, {} with errors",
        summary.repositories,
        if summary.repositories == 1 {
            "y"
        } else {
            "ies"
        },
        summary.succeeded,
        summary.failed
    )?;
    if summary.not_started > 0 {
        write!(
            out,
            ", {} not started (interrupted: run the same command again to finish)",
            summary.not_started
        )?;
    }
    writeln!(
        out,
        "; {} trail{} {}, {} left for a person.",
        summary.fixed,
        if summary.fixed == 1 { "" } else { "s" },
        if applied { "fixed" } else { "to fix" },
        summary.left
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Source>, FleetError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("local")).unwrap();
        let file = dir.path().join("repos.txt");
        std::fs::write(&file, text).unwrap();
        read_repos_file(&file)
    }

    #[test]
    fn repos_file_takes_urls_paths_comments_and_blank_lines() {
        let sources = parse(
            "# fleet\n\nhttps://github.com/o/a.git\n  ssh://git@host/o/b\ngit@github.com:o/c.git\nfile:///srv/d\nlocal\n",
        )
        .unwrap();
        assert_eq!(sources.len(), 5);
        assert_eq!(sources[0], Source::Url("https://github.com/o/a.git".into()));
        assert_eq!(sources[2], Source::Url("git@github.com:o/c.git".into()));
        assert!(matches!(&sources[4], Source::Local { .. }));
    }

    #[test]
    fn a_malformed_line_is_named() {
        for (text, line) in [
            ("https://github.com/o/a\nftp://x/y\n", 2),
            ("# c\n\nnot-a-dir\n", 3),
            ("https://\n", 1),
            ("https://h/o/a\nhttps://h/o/a\n", 2),
        ] {
            let error = parse(text).unwrap_err();
            assert!(
                matches!(error, FleetError::Line { line: l, .. } if l == line),
                "{text:?}: {error}"
            );
            assert!(error.to_string().contains(&format!("repos.txt:{line}:")));
        }
    }

    #[test]
    fn clone_dirs_are_stable_and_distinct() {
        let base = Path::new("/cache");
        let a = clone_dir(base, "https://github.com/o/infra.git");
        assert_eq!(a, clone_dir(base, "https://github.com/o/infra.git"));
        assert_ne!(a, clone_dir(base, "https://github.com/p/infra.git"));
        assert!(a
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("github-com-o-infra-"));
    }

    #[test]
    fn names_for_bodies_are_unique() {
        let names = unique_names(&[
            Source::Url("https://h/o/infra.git".into()),
            Source::Url("https://h/p/infra".into()),
            Source::Url("git@h:o/app.git".into()),
        ]);
        assert_eq!(names, ["infra", "infra-2", "app"]);
    }
}
