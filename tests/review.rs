//! The interactive review, trail by trail: what each question shows, and that declining one
//! trail of a module writes the module planned again without it, which still verifies
//! (`terraform validate`). Through scripted answers in-process, and once through a real
//! pseudo-terminal (`script` from util-linux).

mod support;

use std::path::Path;
use std::process::Command;

use ctfix::cli::Choice;
use support::*;

/// One module, one file, two trails without `kms_key_id`.
fn two_trails() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let module = tmp.path().join("live/prod");
    std::fs::create_dir_all(&module).unwrap();
    std::fs::write(
        module.join("cloudtrail.tf"),
        format!("{}\n{}", trail_tf("org"), trail_tf("regional")),
    )
    .unwrap();
    tmp
}

/// Answers prompts from a script, and records the questions.
struct Scripted {
    answers: Vec<Choice>,
    asked: Vec<String>,
}

impl ctfix::cli::Prompter for Scripted {
    fn is_interactive(&self) -> bool {
        true
    }

    fn choose(&mut self, question: &str) -> std::io::Result<Choice> {
        self.asked.push(question.to_owned());
        Ok(self.answers.remove(0))
    }
}

/// `ctfix --apply live` in `dir`, in-process, with scripted answers: status, stdout and the
/// questions asked.
fn run_scripted(dir: &Path, answers: &[Choice]) -> (ctfix::ExitStatus, String, Vec<String>) {
    use clap::Parser;
    let root = dir.join("live");
    let args = ctfix::cli::Args::parse_from([
        "ctfix",
        "--apply",
        "--color",
        "never",
        root.to_str().unwrap(),
    ]);
    let mut prompter = Scripted {
        answers: answers.to_vec(),
        asked: Vec::new(),
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = ctfix::cli::run(&args, &mut out, &mut err, &mut prompter).unwrap();
    let mut text = String::from_utf8(out).unwrap();
    text.push_str(&String::from_utf8(err).unwrap());
    (status, text, prompter.asked)
}

/// Which of the two trails got a `kms_key_id`.
fn fixed_trails(dir: &Path) -> Vec<&'static str> {
    let text = std::fs::read_to_string(dir.join("live/prod/cloudtrail.tf")).unwrap();
    ["org", "regional"]
        .into_iter()
        .filter(|label| {
            text.contains(&format!(
                "kms_key_id     = aws_kms_key.{label}_cloudtrail.arn"
            ))
        })
        .collect()
}

/// `terraform init` + `validate` of the module with the provider mirror; `Err` says why not,
/// or names the missing tool.
fn validate(dir: &Path) -> Result<(), String> {
    if let Some(reason) = terraform_missing() {
        return Err(format!("terraform is required here: {reason}"));
    }
    let mirror = provider_mirror()?;
    let config = write_terraform_cli_config(dir, &mirror);
    let module = dir.join("live/prod");
    for args in [
        &["init", "-backend=false", "-input=false", "-no-color"][..],
        &["validate", "-no-color"][..],
    ] {
        let output = terraform(&config, &module).args(args).output().unwrap();
        if !output.status.success() {
            return Err(format!(
                "terraform {}:\n{}{}",
                args[0],
                String::from_utf8_lossy(&output.stdout),
                stderr_of(&output)
            ));
        }
    }
    Ok(())
}

/// Validates, or reports the test ignored-in-effect when a tool is missing and tools are
/// not required (never a silent pass: the reason goes to stderr).
fn validate_or_report(dir: &Path, test: &str) {
    match validate(dir) {
        Ok(()) => {}
        Err(reason) if reason.contains("is required here") || reason.contains("mirror") => {
            assert!(!tools_required(), "{test}: {reason}");
            eprintln!("SKIPPED terraform validate in {test}: {reason}");
        }
        Err(reason) => panic!("{test}: the fixed module does not validate: {reason}"),
    }
}

#[test]
fn each_trail_is_asked_with_its_place_reason_safety_and_diff() {
    let tmp = two_trails();
    let (_, out, asked) = run_scripted(tmp.path(), &[Choice::No, Choice::No]);
    assert_eq!(asked, ["Write this fix?", "Write this fix?"]);
    let path = tmp.path().join("live/prod/cloudtrail.tf");
    let first = out
        .find(&format!(
            "[1/2] {} aws_cloudtrail.org \u{2014} missing (safe)",
            path.display()
        ))
        .unwrap_or_else(|| panic!("{out}"));
    let second = out
        .find(&format!(
            "[2/2] {} aws_cloudtrail.regional \u{2014} missing (safe)",
            path.display()
        ))
        .unwrap_or_else(|| panic!("{out}"));
    // Each question shows that trail's own diff, between its header and the next.
    let first_part = &out[first..second];
    assert!(
        first_part.contains("+resource \"aws_kms_key\" \"org_cloudtrail\""),
        "{first_part}"
    );
    assert!(!first_part.contains("regional_cloudtrail"), "{first_part}");
    let second_part = &out[second..];
    assert!(second_part.contains("+resource \"aws_kms_key\" \"regional_cloudtrail\""));
    assert!(!second_part.contains("+resource \"aws_kms_key\" \"org_cloudtrail\""));
    assert!(
        fixed_trails(tmp.path()).is_empty(),
        "no to both writes nothing"
    );
}

#[test]
fn declining_one_trail_of_a_module_writes_the_other_and_the_module_validates() {
    let tmp = two_trails();
    let (status, out, asked) = run_scripted(tmp.path(), &[Choice::Yes, Choice::No]);
    assert_eq!(asked.len(), 2);
    assert_eq!(
        status,
        ctfix::ExitStatus::Findings,
        "one trail is left: {out}"
    );
    assert_eq!(fixed_trails(tmp.path()), ["org"], "{out}");
    assert!(out.contains("Fixed 1 file."), "{out}");
    // The data sources the key needs were written with it, not left to the declined fix.
    let text = std::fs::read_to_string(tmp.path().join("live/prod/cloudtrail.tf")).unwrap();
    assert!(
        text.contains("data \"aws_partition\" \"current\" {}"),
        "{text}"
    );
    assert!(!text.contains("regional_cloudtrail"), "{text}");
    validate_or_report(tmp.path(), "declining_one_trail_of_a_module");
    // The declined trail is still there to fix.
    let (status, _, asked) = run_scripted(tmp.path(), &[Choice::Yes]);
    assert_eq!(asked.len(), 1);
    assert_eq!(status, ctfix::ExitStatus::Clean);
    assert_eq!(fixed_trails(tmp.path()), ["org", "regional"]);
}

#[test]
fn declining_the_first_trail_writes_the_second() {
    let tmp = two_trails();
    let (status, out, _) = run_scripted(tmp.path(), &[Choice::No, Choice::Yes]);
    assert_eq!(status, ctfix::ExitStatus::Findings);
    assert_eq!(fixed_trails(tmp.path()), ["regional"], "{out}");
    validate_or_report(tmp.path(), "declining_the_first_trail");
}

#[test]
fn all_and_quit_answer_for_the_remaining_trails() {
    let tmp = two_trails();
    let (status, _, asked) = run_scripted(tmp.path(), &[Choice::All]);
    assert_eq!(asked.len(), 1);
    assert_eq!(status, ctfix::ExitStatus::Clean);
    assert_eq!(fixed_trails(tmp.path()), ["org", "regional"]);

    let tmp = two_trails();
    let before = snapshot(tmp.path());
    let (status, out, asked) = run_scripted(tmp.path(), &[Choice::Quit]);
    assert_eq!(asked.len(), 1);
    assert_eq!(status, ctfix::ExitStatus::Findings);
    assert_eq!(snapshot(tmp.path()), before);
    assert!(out.contains("Left 1 file unchanged."), "{out}");
}

#[test]
fn per_trail_review_through_a_real_terminal() {
    if Command::new("script").arg("--version").output().is_err() {
        assert!(!tools_required(), "`script` (util-linux) is required here");
        eprintln!("SKIPPED per_trail_review_through_a_real_terminal: `script` (util-linux) is not installed");
        return;
    }
    let tmp = two_trails();
    let command = format!(
        "{} --apply --color never {}",
        env!("CARGO_BIN_EXE_ctfix"),
        tmp.path().join("live").display()
    );
    // `script` gives ctfix a pseudo-terminal: `?` shows the help, then yes to the first
    // trail, no to the second, each key sent once the question is up.
    let output = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "(sleep 1; printf '?'; sleep 0.5; printf y; sleep 1; printf n) | timeout 60 script -qefc '{command}' /dev/null"
        ))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("[1/2] ") && text.contains("[2/2] "), "{text}");
    assert!(
        text.contains("Write this fix? [y]es [n]o [a]ll [q]uit [?]help"),
        "{text}"
    );
    assert!(
        text.contains("n  leave this trail as it is"),
        "? shows the help: {text}"
    );
    assert!(text.contains("Fixed 1 file."), "{text}");
    assert_eq!(fixed_trails(tmp.path()), ["org"], "{text}");
    validate_or_report(tmp.path(), "per_trail_review_through_a_real_terminal");
}
