//! The `ctfix` binary: parse arguments, hand them to the library, map the outcome to an exit
//! code. All the work lives in the `ctfix` library crate.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: the parser allocates many small nodes; the system allocator was a third of the
/// profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Ctrl-C / SIGTERM before any write started: stop at once with 130 (nothing is
    // half-done, nothing was written). Once writing has started, the write in progress backs
    // out, later ones are refused, and the run ends normally, reporting what was written.
    // In a fleet run, the first Ctrl-C only stops starting repositories: those in progress
    // finish, so each ends untouched or with its complete commit.
    let _ = ctrlc::set_handler(|| {
        if ctfix::fleet::interrupt() {
            return;
        }
        if ctfix::write::interrupt() && !ctfix::write::writes_started() {
            std::process::exit(130);
        }
    });
    // `ctfix lsp`: the language server speaks its own protocol on stdin/stdout and takes no
    // options (`--stdio`, which some editors pass, is the only transport).
    if std::env::args_os().nth(1).is_some_and(|arg| arg == "lsp") {
        return match ctfix::lsp::serve_stdio() {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                use std::io::Write;
                let _ = writeln!(std::io::stderr(), "ctfix lsp: error: {error:#}");
                ExitCode::from(1)
            }
        };
    }
    let args = ctfix::cli::Args::parse();
    args.color.write_global();
    let stdout = anstream::stdout();
    let stderr = anstream::stderr();
    // Standard output is line-buffered: a write per line of the diffs and reports. Into a
    // file or pipe (CI, scripts, bots) it is written in large blocks instead (under the
    // colour stripping, which writes piece by piece); on a terminal, where ctfix may prompt,
    // each line still shows at once.
    let mut out: ctfix::cli::IgnoreBrokenPipe<Box<dyn std::io::Write>> =
        ctfix::cli::IgnoreBrokenPipe::new(
            if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                Box::new(stdout.lock())
            } else {
                let choice = anstream::AutoStream::choice(&std::io::stdout());
                let buffered: Box<dyn std::io::Write> = Box::new(
                    std::io::BufWriter::with_capacity(64 << 10, std::io::stdout().lock()),
                );
                Box::new(anstream::AutoStream::new(buffered, choice))
            },
        );
    let mut err = stderr.lock();
    let mut prompter = ctfix::cli::TerminalPrompter;
    let outcome = ctfix::cli::run(&args, &mut out, &mut err, &mut prompter);
    let outcome = outcome.and_then(|status| Ok(std::io::Write::flush(&mut out).map(|()| status)?));
    // Interrupted (Ctrl-C at a prompt, or a signal that backed out every write) before any
    // file was written: 130, as if the handler had stopped the run.
    if ctfix::write::interrupted() && ctfix::write::files_written() == 0 {
        return ExitCode::from(130);
    }
    let status = match outcome {
        Ok(status) => status,
        Err(error) if ctfix::cli::is_broken_pipe(&error) => ctfix::ExitStatus::Clean,
        Err(error) => {
            use std::io::Write;
            let _ = writeln!(err, "ctfix: error: {error:#}");
            ctfix::ExitStatus::Error
        }
    };
    ExitCode::from(status.code())
}
