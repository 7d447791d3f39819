//! The conventions people expect of a command-line tool, through the built binary: shell
//! completions and a man page generated from the same definition as `--help`, `--help`
//! ending with examples, `--version`, and paths named like the subcommands.

mod support;

use std::process::Command;

use assert_cmd::prelude::*;
use predicates::prelude::*;
use support::*;

fn stdout_of(args: &[&str]) -> String {
    let output = ctfix().args(args).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn completions_are_generated_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef ctfix"),
        ("fish", "complete -c ctfix"),
        ("powershell", "Register-ArgumentCompleter"),
        ("elvish", "edit:completion:arg-completer[ctfix]"),
    ] {
        let script = stdout_of(&["completions", shell]);
        assert!(
            script.contains(marker),
            "{shell}: no {marker:?} in\n{script}"
        );
        // From the same definition as --help: the flags are there.
        for flag in ["unsafe-fixes", "fail-on-unknown", "config"] {
            assert!(script.contains(flag), "{shell}: no {flag}");
        }
    }
}

#[test]
fn the_bash_completion_script_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("ctfix.bash");
    std::fs::write(&path, stdout_of(&["completions", "bash"])).unwrap();
    let syntax = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(syntax.status.success(), "{}", stderr_of(&syntax));
    // Sourcing it registers the completion function.
    let loaded = Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p ctfix", path.display()))
        .output()
        .unwrap();
    assert!(loaded.status.success(), "{}", stderr_of(&loaded));
    assert!(String::from_utf8_lossy(&loaded.stdout).contains("ctfix"));
}

#[test]
fn the_man_page_is_roff_from_the_same_definition() {
    let page = stdout_of(&["man"]);
    assert!(page.contains(".TH ctfix 1"), "{page}");
    for text in ["unsafe\\-fixes", "fail\\-on\\-unknown", "completions"] {
        assert!(page.contains(text), "no {text} in the man page");
    }
    if Command::new("man").arg("--version").output().is_err() {
        eprintln!("(man is not installed: the page is checked as text only)");
    } else {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("ctfix.1");
        std::fs::write(&path, &page).unwrap();
        let rendered = Command::new("man")
            .arg("-l")
            .arg(&path)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        assert!(rendered.status.success(), "{}", stderr_of(&rendered));
        assert!(String::from_utf8_lossy(&rendered.stdout).contains("SYNOPSIS"));
    }
}

#[test]
fn help_ends_with_examples_and_version_prints() {
    for flag in ["-h", "--help"] {
        let help = stdout_of(&[flag]);
        let examples = help.rfind("Examples:").expect("examples in --help");
        assert!(help[examples..].contains("ctfix --apply"));
        assert!(!help[examples..].contains("Options:"));
    }
    ctfix()
        .arg("--version")
        .assert()
        .code(0)
        .stdout(predicate::str::starts_with(format!(
            "ctfix {}",
            env!("CARGO_PKG_VERSION")
        )));
}

#[test]
fn paths_named_like_subcommands_stay_reachable() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["completions", "man", "help"] {
        write_trail_module(&tmp.path().join(name), name);
    }
    for path in ["./completions", "./man", "help"] {
        ctfix()
            .current_dir(tmp.path())
            .arg(path)
            .assert()
            .code(1)
            .stdout(predicate::str::contains("noncompliant [missing]"));
    }
    // Options before a path keep working as they always did.
    ctfix()
        .current_dir(tmp.path())
        .args(["--no-diff", "./man"])
        .assert()
        .code(1);
}
