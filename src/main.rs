//! The `ctfix` binary: parse arguments, hand them to the library, map the outcome to an exit
//! code. All the work lives in the `ctfix` library crate.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: the parser allocates many small nodes; the system allocator was a third of the
/// profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Ctrl-C / SIGTERM: with no write in progress, stop at once (nothing is half-done);
    // otherwise the write in progress backs out, later ones are refused, and the run ends
    // normally, reporting what was written.
    // In a fleet run, the first Ctrl-C only stops starting repositories: those in progress
    // finish, so each ends untouched or with its complete commit.
    let _ = ctrlc::set_handler(|| {
        if ctfix::fleet::interrupt() {
            return;
        }
        if ctfix::write::interrupt() {
            std::process::exit(130);
        }
    });
    let args = ctfix::cli::Args::parse();
    args.color.write_global();
    let stdout = anstream::stdout();
    let stderr = anstream::stderr();
    let mut out = ctfix::cli::IgnoreBrokenPipe::new(stdout.lock());
    let mut err = stderr.lock();
    let mut prompter = ctfix::cli::TerminalPrompter;
    let status = match ctfix::cli::run(&args, &mut out, &mut err, &mut prompter) {
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
