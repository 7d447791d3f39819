//! The command line: arguments, the order of the stages, prompts and output. `main.rs` only
//! calls [`run`].

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use crate::model::Applicability;
use crate::report::{write_json, write_text, TextOptions};
use crate::{apply, check, ExitStatus, Settings};

/// Find AWS CloudTrail trails in Terraform that are not encrypted with a customer-managed KMS
/// key (CKV_AWS_35 / AWS-0015 / CloudTrail.2) and fix them, format-preservingly.
///
/// Without --apply, ctfix only reads: it reports every trail and shows the diff of each fix.
/// Exit status: 0 nothing to fix, 1 trails to fix, 2 an error (other files still processed).
#[derive(Debug, Clone, Parser)]
#[command(name = "ctfix", version, about, long_about = None)]
pub struct Args {
    /// Terraform files or directories to check (directories are walked; hidden ones skipped).
    #[arg(default_value = ".")]
    pub paths: Vec<PathBuf>,

    /// Write the fixes (asks once on a terminal unless --yes).
    #[arg(long)]
    pub apply: bool,

    /// With --apply: write without asking.
    #[arg(short = 'y', long, requires = "apply")]
    pub yes: bool,

    /// Also select unsafe fixes (they change a module's behaviour; review them).
    #[arg(long)]
    pub unsafe_fixes: bool,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Do not print diffs (text format).
    #[arg(long)]
    pub no_diff: bool,

    /// Print only errors; the exit status tells the rest.
    #[arg(short, long)]
    pub quiet: bool,

    /// Explain the control (why it matters, what ctfix writes, audit evidence) and exit.
    #[arg(long)]
    pub explain: bool,

    /// When to colour the text output (NO_COLOR is respected under `auto`).
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people: one line per trail, diffs, a summary.
    Text,
    /// For programs: one JSON object (see the README for the contract).
    Json,
}

/// Colour choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    /// Colour on a terminal unless NO_COLOR is set.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

impl Color {
    /// Makes this the process-wide choice for `anstream` streams created afterwards.
    pub fn write_global(self) {
        let choice = match self {
            Color::Auto => anstream::ColorChoice::Auto,
            Color::Always => anstream::ColorChoice::Always,
            Color::Never => anstream::ColorChoice::Never,
        };
        choice.write_global();
    }
}

/// Asks the user yes/no questions; a trait so the flow can be tested with scripted answers.
pub trait Prompter {
    /// Whether a person can answer (standard input and error are terminals).
    fn is_interactive(&self) -> bool;
    /// Asks `question`; `Ok(false)` for no.
    fn confirm(&mut self, question: &str) -> io::Result<bool>;
}

/// Prompts on the terminal with dialoguer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TerminalPrompter;

impl Prompter for TerminalPrompter {
    fn is_interactive(&self) -> bool {
        io::stdin().is_terminal() && io::stderr().is_terminal()
    }

    fn confirm(&mut self, question: &str) -> io::Result<bool> {
        dialoguer::Confirm::new()
            .with_prompt(question)
            .default(false)
            .interact()
            .map_err(|error| match error {
                dialoguer::Error::IO(error) => error,
            })
    }
}

/// Whether an error is a closed output pipe (`ctfix | head`), which is not a failure.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<io::Error>())
        .any(|error| error.kind() == io::ErrorKind::BrokenPipe)
}

/// Runs ctfix: check, optionally confirm and apply, report. Returns the exit status; `Err`
/// only when output itself fails.
pub fn run(
    args: &Args,
    out: &mut dyn Write,
    err: &mut dyn Write,
    prompter: &mut dyn Prompter,
) -> anyhow::Result<ExitStatus> {
    if args.explain {
        out.write_all(crate::explain::CONTROL.as_bytes())?;
        return Ok(ExitStatus::Clean);
    }
    let settings = Settings {
        paths: args.paths.clone(),
        min_applicability: if args.unsafe_fixes {
            Applicability::Unsafe
        } else {
            Applicability::Safe
        },
    };
    let mut report = check(&settings);
    let text_options = TextOptions {
        diff: !args.no_diff,
        findings: true,
        quiet: args.quiet,
        applied: false,
    };

    if args.apply && !report.changes.is_empty() {
        if !args.yes {
            if args.format == Format::Json || !prompter.is_interactive() {
                writeln!(
                    err,
                    "ctfix: error: --apply without --yes needs a terminal to ask on; nothing was written. Review the diff (run without --apply), then run with --apply --yes."
                )?;
                return Ok(ExitStatus::Error);
            }
            write_text(&report, text_options, out, err)?;
            out.flush()?;
            let files = report.changes.len();
            let question = format!(
                "Write these changes to {files} file{}?",
                if files == 1 { "" } else { "s" }
            );
            if !prompter.confirm(&question)? {
                writeln!(out, "Nothing written.")?;
                return Ok(ExitStatus::of(&report));
            }
            apply(&mut report, |_| true);
            let after = TextOptions {
                diff: false,
                findings: false,
                applied: true,
                ..text_options
            };
            write_text(&report, after, out, err)?;
            return Ok(ExitStatus::of(&report));
        }
        apply(&mut report, |_| true);
    }

    match args.format {
        Format::Json => write_json(&report, out)?,
        Format::Text => write_text(
            &report,
            TextOptions {
                applied: args.apply,
                ..text_options
            },
            out,
            err,
        )?,
    }
    Ok(ExitStatus::of(&report))
}
