//! Stage 6: print a [`Report`] for people (text) or programs (JSON). Nothing else prints.
//!
//! # JSON contract (`--format json`)
//! One object, stable across releases (fields may be added, none removed or renamed):
//! ```text
//! {
//!   "version": 1,
//!   "findings": [{"rule", "path", "line", "column", "resource", "status", "reason",
//!                 "message", "meta_argument"?, "suppression"?, "fix"?: {"title",
//!                 "applicability", "selected", "applied", "note"?, "diff"?},
//!                 "via"?: [{"path", "line", "column", "module"}]}],
//!   "changes":  [{"path", "diff", "written"}],
//!   "errors":   [{"path", "line", "column", "message"}],   // line/column null when n/a
//!   "summary":  {"files_scanned", "trails", "compliant", "noncompliant", "unknown",
//!                "suppressed", "fixes_selected", "files_changed", "files_written", "errors"},
//!   "commit"?:  {"repository", "branch", "commit", "files", "pushed_to",  // --commit/--branch
//!                "branch_state"?, "pull_request"?: {"number", "url", "action"}}
//! }
//! ```
//! `status` is one of `compliant`, `noncompliant`, `unknown`, `suppressed`; `applicability`
//! one of `safe`, `unsafe`, `display-only`. `via` (trails in called modules only) lists the
//! `module` blocks from the root to the trail, outermost first; `resource` is then the
//! instance's address (`module.prod.aws_cloudtrail.this`). Paths use `/` and are relative as given.
//! `branch_state` (with `--branch`) is one of `created`, `updated`, `up-to-date`, `edited`,
//! `declined`, `nothing-to-do`; when ctfix made no commit, `commit` is where the branch stands
//! and `files` is 0. The pull request's `action` is `created`, `updated` or `unchanged`.

use std::io::{self, Write};

use anstyle::{AnsiColor, Style};
use serde::Serialize;

use crate::model::{FileChange, Report, Status};
use crate::render::{display_path, render_diff};

/// What the text output includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextOptions {
    /// Print the unified diff of every change.
    pub diff: bool,
    /// Print one line per trail (off after an interactive apply, which already showed them).
    pub findings: bool,
    /// Print only errors (and nothing for clean runs).
    pub quiet: bool,
    /// The run wrote its changes (changes the summary's wording).
    pub applied: bool,
    /// End with the summary line (off while the interactive loop is still asking).
    pub summary: bool,
}

/// Counts for the summary line and the JSON `summary` object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Terraform files found.
    pub files_scanned: usize,
    /// `aws_cloudtrail` blocks found.
    pub trails: usize,
    /// Findings by status.
    pub compliant: usize,
    /// Findings by status.
    pub noncompliant: usize,
    /// Findings by status.
    pub unknown: usize,
    /// Findings by status.
    pub suppressed: usize,
    /// Fixes included in the changes.
    pub fixes_selected: usize,
    /// Files the changes touch.
    pub files_changed: usize,
    /// Files written.
    pub files_written: usize,
    /// Errors.
    pub errors: usize,
}

impl Summary {
    /// Counts a report.
    pub fn of(report: &Report) -> Summary {
        let count = |status| {
            report
                .findings
                .iter()
                .filter(|f| f.status == status)
                .count()
        };
        Summary {
            files_scanned: report.files_scanned,
            trails: report.findings.len(),
            compliant: count(Status::Compliant),
            noncompliant: count(Status::Noncompliant),
            unknown: count(Status::Unknown),
            suppressed: count(Status::Suppressed),
            fixes_selected: report
                .findings
                .iter()
                .filter(|f| f.fix.as_ref().is_some_and(|fix| fix.selected))
                .count(),
            files_changed: report.changes.len(),
            files_written: report.changes.iter().filter(|c| c.written).count(),
            errors: report.errors.len(),
        }
    }
}

const BOLD: Style = Style::new().bold();
const RED: Style = AnsiColor::Red.on_default();
const GREEN: Style = AnsiColor::Green.on_default();
const YELLOW: Style = AnsiColor::Yellow.on_default();
const CYAN: Style = AnsiColor::Cyan.on_default();
const DIM: Style = Style::new().dimmed();

fn status_style(status: Status) -> Style {
    match status {
        Status::Compliant => GREEN,
        Status::Noncompliant => RED.bold(),
        Status::Unknown => YELLOW,
        Status::Suppressed => DIM,
    }
}

/// Writes the text report: findings and diffs to `out`, errors to `err`. Styles are ANSI;
/// the caller's stream strips them where colour is off.
pub fn write_text(
    report: &Report,
    options: TextOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<()> {
    for error in &report.errors {
        write_error(error, err)?;
    }
    if options.quiet {
        return Ok(());
    }
    let findings = if options.findings {
        report.findings.as_slice()
    } else {
        &[]
    };
    for finding in findings {
        let style = status_style(finding.status);
        write!(
            out,
            "{BOLD}{}:{}:{}{BOLD:#}: {} {style}{}{style:#} [{}]",
            display_path(&finding.path),
            finding.line,
            finding.column,
            finding.resource,
            finding.status.as_str(),
            finding.reason,
        )?;
        if let Some(meta) = finding.meta_argument {
            write!(out, " (every instance of its {meta})")?;
        }
        writeln!(out, ": {}", finding.message)?;
        for site in &finding.via {
            writeln!(
                out,
                "  via {}:{}:{} ({})",
                display_path(&site.path),
                site.line,
                site.column,
                site.module
            )?;
        }
        if let Some(fix) = &finding.fix {
            let state = if fix.applied {
                "applied"
            } else if fix.selected {
                if options.applied {
                    "not written"
                } else {
                    "available"
                }
            } else {
                match fix.applicability {
                    crate::model::Applicability::Unsafe => "needs --unsafe-fixes",
                    _ => "shown only",
                }
            };
            writeln!(
                out,
                "  {CYAN}fix{CYAN:#} ({}, {state}): {}",
                fix.applicability.as_str(),
                fix.title
            )?;
            if let Some(note) = &fix.note {
                for (i, line) in note.lines().enumerate() {
                    let lead = if i == 0 { "  note: " } else { "    " };
                    writeln!(out, "{lead}{line}")?;
                }
            }
            if let (Some(diff), true) = (&fix.diff, options.diff) {
                write_colored_diff(diff, out)?;
            }
        }
    }
    if options.diff && options.findings {
        for change in &report.changes {
            writeln!(out)?;
            write_change_diff(change, out)?;
        }
    }
    if options.summary {
        write_summary(report, options, out)?;
    }
    Ok(())
}

/// Writes one error line: `error: path:line:col: message`.
pub fn write_error(error: &crate::model::FileError, err: &mut dyn Write) -> io::Result<()> {
    writeln!(err, "{RED}error{RED:#}: {error}")
}

/// Writes one change's unified diff, coloured.
pub fn write_change_diff(change: &FileChange, out: &mut dyn Write) -> io::Result<()> {
    write_colored_diff(
        &render_diff(&change.path, &change.before, &change.after),
        out,
    )
}

fn write_colored_diff(diff: &str, out: &mut dyn Write) -> io::Result<()> {
    for line in diff.split_inclusive('\n') {
        let style = if line.starts_with("+++") || line.starts_with("---") {
            BOLD
        } else if line.starts_with('+') {
            GREEN
        } else if line.starts_with('-') {
            RED
        } else if line.starts_with("@@") {
            CYAN
        } else {
            Style::new()
        };
        let (body, end) = match line.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (line, ""),
        };
        write!(out, "{style}{body}{style:#}{end}")?;
    }
    Ok(())
}

fn write_summary(report: &Report, options: TextOptions, out: &mut dyn Write) -> io::Result<()> {
    let s = Summary::of(report);
    if !report.findings.is_empty() || !report.changes.is_empty() {
        writeln!(out)?;
    }
    write!(
        out,
        "{} trail{} in {} Terraform file{}: {} compliant, {} noncompliant",
        s.trails,
        plural(s.trails),
        s.files_scanned,
        plural(s.files_scanned),
        s.compliant,
        s.noncompliant,
    )?;
    let fixed = report
        .findings
        .iter()
        .filter(|f| f.fix.as_ref().is_some_and(|fix| fix.applied))
        .count();
    if options.applied && fixed > 0 {
        write!(out, " ({fixed} fixed)")?;
    }
    if s.unknown > 0 {
        write!(out, ", {} unknown", s.unknown)?;
    }
    if s.suppressed > 0 {
        write!(out, ", {} suppressed", s.suppressed)?;
    }
    write!(out, ".")?;
    if options.applied {
        write!(
            out,
            " Fixed {} file{}.",
            s.files_written,
            plural(s.files_written)
        )?;
    } else if s.fixes_selected > 0 {
        write!(
            out,
            " {} fix{} in {} file{}; run with --apply to write {}.",
            s.fixes_selected,
            if s.fixes_selected == 1 { "" } else { "es" },
            s.files_changed,
            plural(s.files_changed),
            if s.fixes_selected == 1 { "it" } else { "them" },
        )?;
    }
    if s.errors > 0 {
        write!(out, " {} error{}.", s.errors, plural(s.errors))?;
    }
    writeln!(out)?;
    if let Some(committed) = &report.committed {
        if let Some(state) = committed.branch_state {
            if !matches!(
                state,
                crate::model::BranchState::Created | crate::model::BranchState::Updated
            ) {
                return write_branch_left(committed, state, out);
            }
        }
        let state = committed
            .branch_state
            .map(|state| format!("; branch {}", state.as_str()))
            .unwrap_or_default();
        write!(
            out,
            "Committed {} file{} on branch {} ({}{state})",
            committed.files,
            plural(committed.files),
            committed.branch,
            &committed.commit[..committed.commit.len().min(12)],
        )?;
        if let Some(remote) = &committed.pushed_to {
            write!(out, " and pushed it to {remote}")?;
        }
        write_pull_request(committed, out)?;
        writeln!(out, ".")?;
    }
    Ok(())
}

/// One line for a branch ctfix did not commit on this time, and why.
fn write_branch_left(
    committed: &crate::model::Committed,
    state: crate::model::BranchState,
    out: &mut dyn Write,
) -> io::Result<()> {
    use crate::model::BranchState;
    let why = match state {
        BranchState::UpToDate => "up-to-date: rebuilt on the base it came out the same, nothing pushed",
        BranchState::Edited => "edited: someone else committed on it, so ctfix left it alone",
        BranchState::Declined => "declined: its pull request was closed without merging, so ctfix left it alone (--recreate overrides)",
        BranchState::NothingToDo => "nothing-to-do: the base already holds the fixes",
        BranchState::Created | BranchState::Updated => "",
    };
    write!(
        out,
        "Branch {} ({}) {why}",
        committed.branch,
        &committed.commit[..committed.commit.len().min(12)],
    )?;
    write_pull_request(committed, out)?;
    writeln!(out, ".")
}

fn write_pull_request(committed: &crate::model::Committed, out: &mut dyn Write) -> io::Result<()> {
    match &committed.pull_request {
        Some(pr) => write!(
            out,
            "; pull request #{} {} ({})",
            pr.number,
            pr.action.as_str(),
            pr.url
        ),
        None => Ok(()),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[derive(Serialize)]
struct JsonChange {
    path: String,
    diff: String,
    written: bool,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    version: u32,
    findings: &'a [crate::model::Finding],
    changes: Vec<JsonChange>,
    errors: &'a [crate::model::FileError],
    summary: Summary,
    #[serde(skip_serializing_if = "Option::is_none")]
    commit: Option<&'a crate::model::Committed>,
}

/// Writes the JSON report (see the module docs for the contract), followed by a newline.
pub fn write_json(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &json_value(report))?;
    writeln!(out)
}

/// The JSON report as a value (a fleet run adds its repository's fields to it).
pub fn json_value(report: &Report) -> serde_json::Value {
    let json = JsonReport {
        version: 1,
        findings: &report.findings,
        changes: report
            .changes
            .iter()
            .map(|change| JsonChange {
                path: display_path(&change.path),
                diff: render_diff(&change.path, &change.before, &change.after),
                written: change.written,
            })
            .collect(),
        errors: &report.errors,
        summary: Summary::of(report),
        commit: report.committed.as_ref(),
    };
    serde_json::to_value(&json).unwrap_or_default()
}
