//! The command line: arguments, the order of the stages, prompts and output. `main.rs` only
//! calls [`run`].

use std::collections::BTreeSet;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{Parser, ValueEnum};

use crate::model::{FileError, Finding};
use crate::render::display_path;
use crate::report::{write_change_diff, write_error, write_json, write_text, TextOptions};
use crate::run::{AcceptAll, Accepted, ApplyOptions, CommitOptions, Mode, Reviewer, RunOptions};
use crate::{ExitStatus, Settings};

/// Find AWS CloudTrail trails in Terraform that are not encrypted with a customer-managed KMS
/// key (CKV_AWS_35 / AWS-0015 / CloudTrail.2) and fix them, format-preservingly.
///
/// Without --apply, ctfix only reads: it reports every trail and shows the diff of each fix.
/// Exit status: 0 nothing to fix, 1 trails to fix, 2 an error (other files still processed).
#[derive(Debug, Clone, Parser)]
#[command(name = "ctfix", version, about, long_about = None, after_help = EXAMPLES)]
#[command(group = clap::ArgGroup::new("committing").args(["branch", "commit"]))]
// `ctfix completions bash` runs the subcommand; a directory named like one is `./completions`.
#[command(args_conflicts_with_subcommands = true, disable_help_subcommand = true)]
pub struct Args {
    /// A command other than checking and fixing.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Terraform files or directories to check (directories are walked; hidden ones skipped).
    #[arg(default_value = ".")]
    pub paths: Vec<PathBuf>,

    /// Write the fixes (asks about each trail's fix on a terminal unless --yes).
    #[arg(long)]
    pub apply: bool,

    /// With --apply: write without asking.
    #[arg(short = 'y', long, requires = "apply")]
    pub yes: bool,

    /// With --apply: write even to files holding uncommitted changes in git.
    #[arg(long, requires = "apply")]
    pub allow_dirty: bool,

    /// With --apply: commit the written files on a new git branch NAME, created from HEAD and
    /// checked out.
    #[arg(long, value_name = "NAME", requires = "apply", help_heading = "Git")]
    pub branch: Option<String>,

    /// With --apply: commit the written files on the current branch.
    #[arg(long, requires = "apply", help_heading = "Git")]
    pub commit: bool,

    /// Push the commit's branch (with --branch or --commit) and set it as upstream.
    #[arg(long, requires = "committing", help_heading = "Git")]
    pub push: bool,

    /// The remote --push sends to [default: origin].
    #[arg(long, value_name = "NAME", requires = "push", help_heading = "Git")]
    pub remote: Option<String>,

    /// With --branch: the branch it is based on, which must be checked out [default: the
    /// branch checked out]. A re-run rebuilds an existing branch of ctfix's on it.
    #[arg(long, value_name = "BRANCH", requires = "branch", help_heading = "Git")]
    pub base: Option<String>,

    /// With --branch and --push: open the pull request on GitHub, or update the open one
    /// (token from GITHUB_TOKEN or GH_TOKEN; GITHUB_API_URL, GITHUB_REPOSITORY).
    #[arg(long, requires_all = ["branch", "push"], help_heading = "Git")]
    pub pr: bool,

    /// With --pr: open the pull request as a draft.
    #[arg(long, requires = "pr", help_heading = "Git")]
    pub draft: bool,

    /// With --pr: a label for the new pull request (repeatable).
    #[arg(long, value_name = "LABEL", requires = "pr", help_heading = "Git")]
    pub label: Vec<String>,

    /// With --pr: rebuild the branch and open a pull request even though the last one was
    /// closed without merging.
    #[arg(long, requires = "pr", help_heading = "Git")]
    pub recreate: bool,

    /// With --apply: write a pull-request body (Markdown) about the fixes to FILE.
    #[arg(long, value_name = "FILE", requires = "apply", help_heading = "Git")]
    pub pr_body: Option<PathBuf>,

    /// Also select unsafe fixes (they change a module's behaviour; review them).
    #[arg(long, overrides_with = "no_unsafe_fixes")]
    pub unsafe_fixes: bool,

    /// Select only safe fixes, whatever the configuration file says.
    #[arg(long, overrides_with = "unsafe_fixes")]
    pub no_unsafe_fixes: bool,

    /// Exit 1 when a trail's encryption cannot be decided (status unknown), not only when
    /// one needs fixing.
    #[arg(long, overrides_with = "no_fail_on_unknown")]
    pub fail_on_unknown: bool,

    /// Exit 0 on undecided trails, whatever the configuration file says.
    #[arg(long, overrides_with = "fail_on_unknown")]
    pub no_fail_on_unknown: bool,

    /// Read settings from FILE instead of the nearest .ctfix.toml at or above the paths
    /// (up to the repository's top).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

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

    /// Process the repositories listed in FILE, one per line: a local path (relative to
    /// FILE's directory) or a clone URL (https, ssh, git@host:path, file://); `#` comments.
    #[arg(long, value_name = "FILE", help_heading = "Fleet")]
    pub repos: Option<PathBuf>,

    /// Where --repos clones its URLs, one directory per URL, reused and fetched on later runs
    /// [default: $XDG_CACHE_HOME/ctfix/repos or ~/.cache/ctfix/repos].
    #[arg(long, value_name = "DIR", requires = "repos", help_heading = "Fleet")]
    pub workdir: Option<PathBuf>,

    /// How many repositories a fleet run (--repos, or --branch/--commit with paths in
    /// several repositories) processes at once [default: the number of cores].
    #[arg(long, value_name = "N", help_heading = "Fleet")]
    pub jobs: Option<usize>,

    /// When to colour the text output (NO_COLOR is respected under `auto`).
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
}

/// Shown at the end of `--help` and in the man page.
const EXAMPLES: &str = "\
Examples:
  ctfix                                 Check the current directory; show each fix's diff
  ctfix --apply live/prod               Ask about each trail's fix; write the accepted ones
  ctfix --apply --yes --unsafe-fixes .  Write every fix, unsafe ones too
  ctfix --fail-on-unknown --format sarif . > ctfix.sarif
                                        CI gate: undecided trails fail too
  ctfix --apply --yes --branch ctfix/cloudtrail-kms --push --pr-body body.md
                                        Fix, commit on a new branch, push, and write the PR body
  ctfix --config org.ctfix.toml .       Settings from a file other than the nearest .ctfix.toml
  ctfix completions bash > ~/.local/share/bash-completion/completions/ctfix
  ctfix man > ~/.local/share/man/man1/ctfix.1";

/// Commands other than checking and fixing; without one, ctfix checks (and fixes) `PATH`s.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    /// Print a shell completion script for SHELL to standard output.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to standard output: `ctfix man | man -l -`.
    Man,
}

/// Writes the completion script for `shell`, generated from the same definition as `--help`.
pub fn write_completions(shell: clap_complete::Shell, out: &mut dyn Write) -> io::Result<()> {
    use clap::CommandFactory;
    let mut command = Args::command();
    clap_complete::generate(shell, &mut command, "ctfix", out);
    Ok(())
}

/// Writes the man page (roff), generated from the same definition as `--help`.
pub fn write_man_page(out: &mut dyn Write) -> io::Result<()> {
    use clap::CommandFactory;
    clap_mangen::Man::new(Args::command()).render(out)
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people: one line per trail, diffs, a summary.
    Text,
    /// For programs: one JSON object (see the README for the contract).
    Json,
    /// For code-scanning dashboards: SARIF 2.1.0, fixes included.
    Sarif,
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

/// An answer to "apply this change?" (ast-grep's interactive loop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Write this change.
    Yes,
    /// Leave this change out.
    No,
    /// Write this change and every later one without asking.
    All,
    /// Leave this change and every later one out.
    Quit,
}

/// Asks the user about each change; a trait so the loop can be tested with scripted answers.
pub trait Prompter {
    /// Whether a person can see the changes and answer (standard input, output and error
    /// are terminals).
    fn is_interactive(&self) -> bool;
    /// Asks `question` and waits for one key.
    fn choose(&mut self, question: &str) -> io::Result<Choice>;
}

/// Prompts on the terminal: one key per decision, `[y]es [n]o [a]ll [q]uit [?]help`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TerminalPrompter;

impl Prompter for TerminalPrompter {
    fn is_interactive(&self) -> bool {
        // stdout too: the diffs go there, and nobody should approve a change they cannot see.
        io::stdin().is_terminal() && io::stdout().is_terminal() && io::stderr().is_terminal()
    }

    fn choose(&mut self, question: &str) -> io::Result<Choice> {
        use console::Key;
        let term = console::Term::stderr();
        let prompt = format!("{question} [y]es [n]o [a]ll [q]uit [?]help ");
        term.write_str(&prompt)?;
        let mut hinted = false;
        loop {
            // console reports Ctrl-C in raw mode as an `Interrupted` error.
            let key = match term.read_key() {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => Key::CtrlC,
                other => other?,
            };
            let (choice, word) = match key {
                Key::Char('y' | 'Y') => (Choice::Yes, "yes"),
                Key::Char('n' | 'N') => (Choice::No, "no"),
                Key::Char('a' | 'A') => (Choice::All, "all"),
                Key::Char('q' | 'Q') | Key::Escape => (Choice::Quit, "quit"),
                // Ctrl-C in raw mode is a key, not a signal: treated as the signal would be
                // (nothing has been written while asking; the binary exits 130).
                Key::CtrlC => {
                    term.write_line("")?;
                    crate::write::interrupt();
                    return Err(io::Error::new(
                        io::ErrorKind::Interrupted,
                        "interrupted at the prompt; nothing was written",
                    ));
                }
                Key::Char('?' | 'h' | 'H') => {
                    term.write_line("help")?;
                    term.write_str(PROMPT_HELP)?;
                    term.write_str(&prompt)?;
                    continue;
                }
                _ => {
                    if !hinted {
                        term.write_str("(one key: y, n, a, q/Esc, or ? for help) ")?;
                        hinted = true;
                    }
                    continue;
                }
            };
            term.write_line(word)?;
            return Ok(choice);
        }
    }
}

/// What each answer does, shown on `?`.
const PROMPT_HELP: &str = "\
  y  write this fix
  n  leave this trail as it is (other fixes of its module are planned again without it)
  a  write this fix and every later one without asking
  q  write nothing more (the fixes accepted so far are written)
  ?  this help
";

/// A writer that stops writing, without error, once its reader has gone (`ctfix | head`):
/// the run still finishes and its exit status still tells whether trails need fixing, which
/// is what a CI gate with `pipefail` reads.
#[derive(Debug)]
pub struct IgnoreBrokenPipe<W> {
    inner: W,
    closed: bool,
}

impl<W> IgnoreBrokenPipe<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        IgnoreBrokenPipe {
            inner,
            closed: false,
        }
    }
}

impl<W: Write> Write for IgnoreBrokenPipe<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.closed {
            return Ok(buf.len());
        }
        match self.inner.write(buf) {
            Err(error) if error.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(buf.len())
            }
            other => other,
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        match self.inner.flush() {
            Err(error) if error.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            other => other,
        }
    }
}

/// Whether an error is a closed output pipe (`ctfix | head`), which is not a failure.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<io::Error>())
        .any(|error| error.kind() == io::ErrorKind::BrokenPipe)
}

/// Runs ctfix: builds the run's options from the arguments, runs it ([`crate::run::run`]) and
/// prints the outcome. Returns the exit status; `Err` only when output itself fails.
pub fn run(
    args: &Args,
    out: &mut dyn Write,
    err: &mut dyn Write,
    prompter: &mut dyn Prompter,
) -> anyhow::Result<ExitStatus> {
    match &args.command {
        Some(Command::Completions { shell }) => {
            write_completions(*shell, out)?;
            return Ok(ExitStatus::Clean);
        }
        Some(Command::Man) => {
            write_man_page(out)?;
            return Ok(ExitStatus::Clean);
        }
        None => {}
    }
    if args.explain {
        out.write_all(crate::explain::CONTROL.as_bytes())?;
        return Ok(ExitStatus::Clean);
    }
    let fleet = crate::fleet::sources(
        args.repos.as_deref(),
        &args.paths,
        args.commit || args.branch.is_some(),
    )?;
    // A fleet run reads each repository's own `.ctfix.toml` (unless --config names one file
    // for all of them); a single run reads the nearest one of its paths.
    let found = match (&fleet, &args.config) {
        (Some(_), None) => Ok(None),
        _ => find_config(args),
    };
    let config = match found {
        Ok(config) => config.unwrap_or_default(),
        Err(error) => {
            // Before anything is read or written.
            let report = crate::Report {
                errors: vec![error],
                ..crate::Report::default()
            };
            let options = TextOptions {
                diff: false,
                findings: false,
                quiet: args.quiet,
                applied: false,
                summary: false,
            };
            write_report(args, &report, options, out, err)?;
            return Ok(ExitStatus::Error);
        }
    };
    // Flags override the file.
    let unsafe_flag = crate::config::flag(args.unsafe_fixes, args.no_unsafe_fixes);
    let fail_on_unknown = config.fail_on_unknown(crate::config::flag(
        args.fail_on_unknown,
        args.no_fail_on_unknown,
    ));
    let exit_status = |report: &crate::Report| ExitStatus::of_run(report, fail_on_unknown);
    let mut settings = Settings {
        paths: args.paths.clone(),
        ..Settings::default()
    };
    config.apply_to(&mut settings, unsafe_flag);
    let options = RunOptions {
        settings,
        mode: match args.apply {
            false => Mode::Check,
            true => Mode::Apply(ApplyOptions {
                allow_dirty: args.allow_dirty,
                commit: (args.commit || args.branch.is_some()).then(|| CommitOptions {
                    branch: args.branch.clone(),
                    push: args
                        .push
                        .then(|| args.remote.clone().unwrap_or_else(|| "origin".to_owned())),
                    base: args.base.clone(),
                    pull_request: args.pr.then(|| {
                        Box::new(crate::run::PullRequestOptions {
                            forge: crate::git::github::Forge::from_env(),
                            draft: args.draft,
                            labels: args.label.clone(),
                            recreate: args.recreate,
                        })
                    }),
                }),
                pr_body: args.pr_body.clone(),
            }),
        },
    };
    let text_options = TextOptions {
        diff: !args.no_diff,
        findings: true,
        quiet: args.quiet,
        applied: args.apply,
        summary: true,
    };
    if let Some(sources) = fleet {
        return run_fleet(args, sources, options, text_options, out, err);
    }
    let outcome = if args.yes || !args.apply {
        crate::run::run(&options, &mut AcceptAll)?
    } else {
        let mut reviewer = Interactive {
            prompter,
            format: args.format,
            options: text_options,
            settings: &options.settings,
            out: &mut *out,
            err: &mut *err,
            shown_errors: Vec::new(),
        };
        let outcome = crate::run::run(&options, &mut reviewer)?;
        if outcome.reviewed {
            let shown_errors = reviewer.shown_errors;
            let report = &outcome.report;
            let skipped = report.changes.iter().filter(|c| !c.written).count();
            if skipped > 0 {
                writeln!(
                    out,
                    "Left {skipped} file{} unchanged.",
                    if skipped == 1 { "" } else { "s" }
                )?;
            }
            // The errors found while checking were shown with the findings; only new ones now.
            for error in report.errors.iter().filter(|e| !shown_errors.contains(e)) {
                write_error(error, err)?;
            }
            let after = TextOptions {
                diff: false,
                findings: false,
                ..text_options
            };
            write_text(report, after, out, &mut io::sink())?;
            say_body_written(args, outcome.pr_body.as_deref(), out)?;
            return Ok(exit_status(report));
        }
        outcome
    };
    write_report(args, &outcome.report, text_options, out, err)?;
    say_body_written(args, outcome.pr_body.as_deref(), out)?;
    Ok(exit_status(&outcome.report))
}

/// The run's configuration: `--config FILE`, or the nearest `.ctfix.toml` of the paths.
pub fn find_config(args: &Args) -> Result<Option<crate::config::Config>, FileError> {
    match &args.config {
        Some(path) => crate::config::load(path).map(Some),
        None => crate::config::find_for_paths(&args.paths),
    }
}

/// Runs a fleet: the progress bar on a terminal, each repository's report, then the table.
fn run_fleet(
    args: &Args,
    sources: Vec<crate::fleet::Source>,
    run: RunOptions,
    text_options: TextOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<ExitStatus> {
    use crate::fleet::{FleetOptions, Output};
    if args.apply && !args.yes {
        anyhow::bail!("a run over several repositories writes without asking: review it first (run without --apply), then add --yes");
    }
    let format = match args.format {
        Format::Text => Output::Text(text_options),
        Format::Json => Output::Json,
        Format::Sarif => Output::Sarif,
    };
    let options = FleetOptions {
        sources,
        run,
        workdir: args
            .workdir
            .clone()
            .unwrap_or_else(crate::fleet::default_workdir),
        jobs: args
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        format,
        repository_config: args
            .config
            .is_none()
            .then_some(crate::fleet::RepositoryConfig {
                unsafe_fixes: crate::config::flag(args.unsafe_fixes, args.no_unsafe_fixes),
            }),
    };
    crate::fleet::validate(&options)?;
    let outcome = if args.format == Format::Text && !args.quiet && io::stderr().is_terminal() {
        let mut bar = ProgressBar::new(options.sources.len());
        crate::fleet::run(&options, &mut bar, out)?
    } else {
        crate::fleet::run(&options, &mut crate::fleet::NoProgress, out)?
    };
    if args.format == Format::Text {
        if args.quiet {
            for row in &outcome.rows {
                for error in &row.errors {
                    writeln!(err, "{}: {error}", row.repository)?;
                }
            }
        } else {
            crate::fleet::write_table(&outcome, args.apply, out)?;
        }
    }
    if outcome.interrupted && args.format != Format::Text {
        writeln!(
            err,
            "ctfix: interrupted: some repositories did not start; run the same command again to finish"
        )?;
    }
    Ok(outcome.status())
}

/// The fleet's progress on standard error: repositories done / total and those in progress.
struct ProgressBar {
    bar: indicatif::ProgressBar,
    current: BTreeSet<(usize, String)>,
}

impl ProgressBar {
    fn new(total: usize) -> ProgressBar {
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(total as u64),
            indicatif::ProgressDrawTarget::stderr(),
        );
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} repositories {wide_msg}")
        {
            bar.set_style(style);
        }
        ProgressBar {
            bar,
            current: BTreeSet::new(),
        }
    }

    fn show(&self) {
        let names: Vec<&str> = self.current.iter().map(|(_, name)| name.as_str()).collect();
        self.bar.set_message(names.join(", "));
    }
}

impl crate::fleet::Progress for ProgressBar {
    fn started(&mut self, index: usize, name: &str) {
        self.current.insert((index, name.to_owned()));
        self.show();
    }

    fn finished(&mut self, index: usize, row: &crate::fleet::Row) {
        self.current.remove(&(index, row.repository.clone()));
        self.bar.inc(1);
        self.show();
    }

    fn done(&mut self) {
        // Cleared before the reports are printed, so they start on a line of their own.
        self.bar.finish_and_clear();
    }
}

/// Tells where the pull-request body went (text output, not quiet).
fn say_body_written(args: &Args, body: Option<&Path>, out: &mut dyn Write) -> io::Result<()> {
    match (body, args.format, args.quiet) {
        (Some(path), Format::Text, false) => {
            writeln!(out, "Pull-request body written to {}.", display_path(path))
        }
        _ => Ok(()),
    }
}

fn write_report(
    args: &Args,
    report: &crate::Report,
    options: TextOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<()> {
    match args.format {
        Format::Json => write_json(report, out),
        Format::Sarif => crate::sarif::write_sarif(report, out),
        Format::Text => write_text(report, options, out, err),
    }
}

/// The person at the terminal as the run's [`Reviewer`]: shows the findings, then each
/// trail's fix and diff, and asks whether to write it.
struct Interactive<'a> {
    prompter: &'a mut dyn Prompter,
    format: Format,
    options: TextOptions,
    /// The run's settings, to plan a module again with some of its trails.
    settings: &'a Settings,
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
    /// The errors shown with the findings (later ones are printed after the answers).
    shown_errors: Vec<FileError>,
}

impl Reviewer for Interactive<'_> {
    fn refusal(&self) -> Option<String> {
        if self.format != Format::Text {
            Some("--apply without --yes asks about each change, which --format json/sarif cannot; nothing was written. Review the diff (run without --apply), then run with --apply --yes".to_owned())
        } else if !self.prompter.is_interactive() {
            Some("--apply without --yes shows each change and asks about it, which needs a terminal on standard input, output and error; nothing was written. Review the diff (run without --apply), then run with --apply --yes".to_owned())
        } else {
            None
        }
    }

    fn review(&mut self, report: &crate::Report) -> io::Result<Accepted> {
        self.shown_errors = report.errors.clone();
        let accepted = ask_each_trail(
            report,
            self.settings,
            self.options,
            self.prompter,
            self.out,
            self.err,
        )?;
        Ok(Accepted::Trails(accepted))
    }
}

/// Shows the findings, then each trail's fix (where it is, why, how safe, its note and its
/// diff) and asks whether to write it. Returns the accepted trails; a module some of whose
/// trails are declined is planned again without them before anything is written.
fn ask_each_trail(
    report: &crate::Report,
    settings: &Settings,
    options: TextOptions,
    prompter: &mut dyn Prompter,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<BTreeSet<(PathBuf, String)>> {
    write_text(
        report,
        TextOptions {
            diff: false,
            summary: false,
            applied: false,
            ..options
        },
        out,
        err,
    )?;
    let selected: Vec<&Finding> = report
        .findings
        .iter()
        .filter(|f| f.fix.as_ref().is_some_and(|fix| fix.selected))
        .collect();
    let mut accepted = BTreeSet::new();
    let total = selected.len();
    let mut trails = selected.iter().enumerate();
    while let Some((i, finding)) = trails.next() {
        let Some(fix) = &finding.fix else { continue };
        writeln!(out)?;
        writeln!(
            out,
            "[{}/{total}] {} {} \u{2014} {} ({})",
            i + 1,
            display_path(&finding.path),
            finding.resource,
            finding.reason,
            fix.applicability.as_str()
        )?;
        writeln!(out, "  fix: {}", fix.title)?;
        if let Some(note) = &fix.note {
            writeln!(out, "  note: {note}")?;
        }
        // The question is about this diff: shown even with --no-diff.
        for change in crate::run::trail_changes(report, settings, finding).iter() {
            write_change_diff(change, out)?;
        }
        out.flush()?;
        let key = (finding.path.clone(), finding.resource.clone());
        match prompter.choose("Write this fix?")? {
            Choice::Yes => {
                accepted.insert(key);
            }
            Choice::No => {}
            Choice::All => {
                accepted.insert(key);
                accepted.extend(
                    trails
                        .by_ref()
                        .map(|(_, f)| (f.path.clone(), f.resource.clone())),
                );
            }
            Choice::Quit => break,
        }
    }
    Ok(accepted)
}
