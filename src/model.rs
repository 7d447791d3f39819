//! Plain data passed between the pipeline stages. Nothing here does I/O.

use std::path::PathBuf;

use serde::Serialize;

/// The rule every finding belongs to. ctfix checks one control; the id names it once.
pub const RULE_ID: &str = "cloudtrail-kms-cmk";

/// How a trail's encryption was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// `kms_key_id` resolves to a customer-managed key that CloudTrail can use, or to a key ARN
    /// from outside the module that ctfix cannot inspect.
    Compliant,
    /// The trail's logs are not encrypted with a usable customer-managed key.
    Noncompliant,
    /// ctfix cannot decide without information the module does not hold.
    Unknown,
    /// A scanner or ctfix suppression comment covers the trail; it is reported, never changed.
    Suppressed,
}

impl Status {
    /// The stable lowercase name used in text and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Compliant => "compliant",
            Status::Noncompliant => "noncompliant",
            Status::Unknown => "unknown",
            Status::Suppressed => "suppressed",
        }
    }
}

/// How safe a fix is to write without a human looking at it (ruff's model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Applicability {
    /// Shown so a human can make the change; ctfix never writes it.
    DisplayOnly,
    /// Correct, but it changes behaviour a human should confirm; written with `--unsafe-fixes`.
    Unsafe,
    /// Written by `--apply`.
    Safe,
}

impl Applicability {
    /// The stable name used in text and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Applicability::DisplayOnly => "display-only",
            Applicability::Unsafe => "unsafe",
            Applicability::Safe => "safe",
        }
    }
}

/// One `aws_cloudtrail` block and the verdict on its `kms_key_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Always [`RULE_ID`].
    pub rule: &'static str,
    /// The file holding the trail, as given on the command line or found by the walk.
    #[serde(serialize_with = "serialize_path")]
    pub path: PathBuf,
    /// 1-based line of the `resource` keyword.
    pub line: usize,
    /// 1-based column (in characters) of the `resource` keyword.
    pub column: usize,
    /// `aws_cloudtrail.<label>`.
    pub resource: String,
    /// The verdict.
    pub status: Status,
    /// A short stable code for why (`missing`, `empty`, `null`, `key-reference`, …).
    pub reason: &'static str,
    /// One sentence for a human.
    pub message: String,
    /// `count` or `for_each` when the trail carries one: the verdict covers every instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta_argument: Option<&'static str>,
    /// The fix ctfix proposes, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<FixSummary>,
    /// The comment that suppresses this trail, for `suppressed` findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppression: Option<crate::suppress::Suppression>,
}

/// What a finding's fix does and how safe it is; the edits themselves live in [`Fix`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FixSummary {
    /// One line, e.g. `generate aws_kms_key.main_cloudtrail and wire it into kms_key_id`.
    pub title: String,
    /// How safe it is to write.
    pub applicability: Applicability,
    /// Whether it is part of this run's changes (safe, or unsafe with `--unsafe-fixes`).
    pub selected: bool,
    /// Whether this run wrote it.
    pub applied: bool,
    /// What a human must know or do beyond the edits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The diff of this fix alone, for fixes not part of the run's changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

/// A replacement of `range` (byte offsets into the file's text, after any BOM) with `text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// The file.
    pub path: PathBuf,
    /// Byte range to replace; empty for an insertion.
    pub range: std::ops::Range<usize>,
    /// The new text.
    pub text: String,
}

/// The edits that fix one finding (in the trail's file, and possibly in the file holding the
/// key it uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fix {
    /// What the fix does.
    pub title: String,
    /// How safe it is.
    pub applicability: Applicability,
    /// Non-overlapping edits, in any order; none when another fix of the run covers this one.
    pub edits: Vec<Edit>,
    /// What a human must know or do beyond the edits (display-only fixes).
    pub note: Option<String>,
}

/// A file's content before and after the fixes selected for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// The file.
    pub path: PathBuf,
    /// The bytes read from disk.
    pub before: Vec<u8>,
    /// The bytes to write.
    pub after: Vec<u8>,
    /// Whether this run wrote `after` to disk.
    pub written: bool,
}

/// A problem with one file (or path). It is reported; the run goes on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileError {
    /// The file or path concerned.
    #[serde(serialize_with = "serialize_path")]
    pub path: PathBuf,
    /// 1-based line, when the problem has a position.
    pub line: Option<usize>,
    /// 1-based column, when the problem has a position.
    pub column: Option<usize>,
    /// What happened and, where it helps, what to do.
    pub message: String,
}

impl FileError {
    /// An error about a whole file or path.
    pub fn new(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        FileError {
            path: path.into(),
            line: None,
            column: None,
            message: message.into(),
        }
    }

    /// An error at a position in a file.
    pub fn at(
        path: impl Into<PathBuf>,
        line: usize,
        column: usize,
        message: impl Into<String>,
    ) -> Self {
        FileError {
            path: path.into(),
            line: Some(line),
            column: Some(column),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", crate::render::display_path(&self.path))?;
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, ":{line}:{column}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The commit `--commit` / `--branch` recorded (and `--push` sent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Committed {
    /// The repository's working directory.
    #[serde(serialize_with = "serialize_path")]
    pub repository: PathBuf,
    /// The branch the commit is on (`HEAD` when detached).
    pub branch: String,
    /// The commit's full hash.
    pub commit: String,
    /// How many files it changes.
    pub files: usize,
    /// The remote it was pushed to, once the push succeeded.
    pub pushed_to: Option<String>,
    /// With `--branch`: what happened to the branch (a re-run may leave it as it was).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch_state: Option<BranchState>,
    /// With `--pr`: the pull request opened or updated for the branch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<PullRequest>,
}

/// What a run did to its `--branch`: the bot's answer to "what happened this week".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BranchState {
    /// The branch did not exist; ctfix made it.
    Created,
    /// The branch held only ctfix's commits; it was rebuilt on the base with one new commit.
    Updated,
    /// Rebuilt on the base, the branch's tree came out the same: nothing pushed.
    UpToDate,
    /// Someone else committed on the branch: ctfix left it alone.
    Edited,
    /// A person closed ctfix's pull request without merging it: ctfix left the branch alone.
    Declined,
    /// The base already holds the fixes (the pull request was merged).
    NothingToDo,
}

impl BranchState {
    /// The name used in JSON and text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::UpToDate => "up-to-date",
            Self::Edited => "edited",
            Self::Declined => "declined",
            Self::NothingToDo => "nothing-to-do",
        }
    }
}

/// The pull request `--pr` opened or updated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullRequest {
    /// Its number in the repository.
    pub number: u64,
    /// Its web address.
    pub url: String,
    /// What ctfix did to it.
    pub action: PullRequestAction,
}

/// What `--pr` did to the pull request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PullRequestAction {
    /// Opened it.
    Created,
    /// Changed its title or body.
    Updated,
    /// Found it as it should be.
    Unchanged,
}

impl PullRequestAction {
    /// The name used in JSON and text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Unchanged => "unchanged",
        }
    }
}

/// Everything one run found, changed and failed on, sorted for deterministic output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// One per `aws_cloudtrail` block.
    pub findings: Vec<Finding>,
    /// One per file the selected fixes change.
    pub changes: Vec<FileChange>,
    /// Per-file problems.
    pub errors: Vec<FileError>,
    /// How many files were read.
    pub files_scanned: usize,
    /// The commit holding the written files, with `--commit` / `--branch`.
    pub committed: Option<Committed>,
}

impl Report {
    /// Sorts findings, changes and errors by path and position.
    pub fn sort(&mut self) {
        self.findings
            .sort_by(|a, b| (&a.path, a.line, a.column).cmp(&(&b.path, b.line, b.column)));
        self.changes.sort_by(|a, b| a.path.cmp(&b.path));
        self.errors
            .sort_by(|a, b| (&a.path, a.line, a.column).cmp(&(&b.path, b.line, b.column)));
    }
}

/// Paths in machine output use `/` and no leading `./`, whatever the platform.
fn serialize_path<S: serde::Serializer>(
    path: &std::path::Path,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&crate::render::display_path(path))
}
