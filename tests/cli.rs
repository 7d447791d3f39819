//! The command line through the built binary: exit codes, output contracts, prompts, and
//! that the diffs ctfix prints apply with `git apply`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::prelude::*;
use ctfix::cli::Choice;
use predicates::prelude::*;
use support::*;

fn demo() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo"),
        &tmp.path().join("demo"),
    );
    tmp
}

#[test]
fn check_reports_every_trail_shows_diffs_and_writes_nothing() {
    let tmp = demo();
    let before = snapshot(tmp.path());
    ctfix()
        .current_dir(tmp.path())
        .arg("demo")
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "demo/live/prod/cloudtrail.tf:2:1: aws_cloudtrail.org noncompliant [missing]",
        ))
        .stdout(predicate::str::contains("aws_cloudtrail.this compliant"))
        .stdout(predicate::str::contains(
            "+++ b/demo/live/prod/cloudtrail.tf",
        ))
        .stdout(predicate::str::contains(
            "+  kms_key_id                    = aws_kms_key.org_cloudtrail.arn",
        ))
        .stdout(predicate::str::contains(
            "4 trails in 5 Terraform files: 1 compliant, 3 noncompliant.",
        ));
    assert_eq!(snapshot(tmp.path()), before);
}

#[test]
fn apply_yes_fixes_and_second_run_is_clean() {
    let tmp = demo();
    ctfix()
        .current_dir(tmp.path())
        .args(["--apply", "--yes", "demo"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("Fixed 3 files."));
    let fixed = snapshot(tmp.path());
    ctfix()
        .current_dir(tmp.path())
        .arg("demo")
        .assert()
        .code(0)
        .stdout(predicate::str::contains("4 compliant, 0 noncompliant"))
        .stdout(predicate::str::contains("+++").not());
    assert_eq!(snapshot(tmp.path()), fixed);
}

#[test]
fn apply_without_yes_and_without_terminal_refuses() {
    let tmp = demo();
    let before = snapshot(tmp.path());
    ctfix()
        .current_dir(tmp.path())
        .args(["--apply", "demo"])
        .stdin(std::process::Stdio::null())
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "which needs a terminal on standard input, output and error",
        ))
        .stdout(predicate::str::contains("Fixed 0 files."));
    assert_eq!(snapshot(tmp.path()), before);
    // With JSON output the reason is the format, and the JSON still comes.
    let output = ctfix()
        .current_dir(tmp.path())
        .args(["--apply", "--format", "json", "demo"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(json["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("which --format json/sarif cannot"));
    assert_eq!(snapshot(tmp.path()), before);
}

#[test]
fn yes_requires_apply() {
    ctfix()
        .args(["--yes", "."])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--apply"));
}

#[test]
fn missing_path_is_an_error_but_other_paths_are_checked() {
    let tmp = demo();
    ctfix()
        .current_dir(tmp.path())
        .args(["no/such/dir", "demo"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no/such/dir: cannot read path"))
        .stdout(predicate::str::contains("aws_cloudtrail.org noncompliant"));
}

#[test]
fn unparseable_file_is_reported_with_position_and_left_untouched_while_others_are_fixed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::write(root.join("good.tf"), "resource \"aws_cloudtrail\" \"good\" {\n  name           = \"good\"\n  s3_bucket_name = \"logs\"\n}\n").unwrap();
    let broken = "resource \"aws_cloudtrail\" \"bad\" {\n  name = \"bad\"\n  s3_bucket_name =\n}\n";
    std::fs::write(root.join("broken.tf"), broken).unwrap();
    ctfix()
        .current_dir(root)
        .args(["--apply", "--yes", "."])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("broken.tf:3:19: cannot parse HCL"))
        .stderr(predicate::str::contains("s3_bucket_name ="));
    assert_eq!(
        std::fs::read_to_string(root.join("broken.tf")).unwrap(),
        broken
    );
    assert!(std::fs::read_to_string(root.join("good.tf"))
        .unwrap()
        .contains("kms_key_id"));
}

#[test]
fn json_report_keeps_its_contract() {
    let tmp = demo();
    let output = ctfix()
        .current_dir(tmp.path())
        .args(["--format", "json", "demo"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["version"], 1);
    let findings = json["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 4);
    for finding in findings {
        for key in [
            "rule", "path", "line", "column", "resource", "status", "reason", "message",
        ] {
            assert!(!finding[key].is_null(), "finding lacks {key}: {finding}");
        }
        assert!(["compliant", "noncompliant", "unknown", "suppressed"]
            .contains(&finding["status"].as_str().unwrap()));
    }
    let regional = findings
        .iter()
        .find(|f| f["resource"] == "aws_cloudtrail.regional")
        .unwrap();
    assert_eq!(regional["meta_argument"], "for_each");
    assert_eq!(regional["reason"], "null");
    assert_eq!(regional["fix"]["applicability"], "safe");
    let changes = json["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 3);
    for change in changes {
        assert!(change["diff"]
            .as_str()
            .unwrap()
            .starts_with(&format!("--- a/{}\n", change["path"].as_str().unwrap())));
        assert_eq!(change["written"], false);
    }
    assert_eq!(json["errors"].as_array().unwrap().len(), 0);
    assert_eq!(json["summary"]["noncompliant"], 3);
}

#[test]
fn diffs_apply_with_git_apply_and_match_apply() {
    for case in ["demo", "crlf", "no-final-newline", "bom"] {
        let tmp = tempfile::tempdir().unwrap();
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let (via_patch, via_apply) = (tmp.path().join("patch"), tmp.path().join("apply"));
        for root in [&via_patch, &via_apply] {
            if case == "demo" {
                copy_tree(&fixtures.join("demo"), root);
            } else {
                std::fs::create_dir_all(root).unwrap();
                std::fs::copy(fixtures.join(case).join("input.tf"), root.join("main.tf")).unwrap();
            }
        }
        let output = ctfix()
            .current_dir(&via_patch)
            .args(["--format", "json", "."])
            .output()
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let patch: String = json["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["diff"].as_str().unwrap())
            .collect();
        assert!(!patch.is_empty(), "{case}: no diff");
        std::fs::write(tmp.path().join("fix.patch"), &patch).unwrap();
        Command::new("git")
            .current_dir(&via_patch)
            .args(["apply", "--whitespace=nowarn"])
            .arg(tmp.path().join("fix.patch"))
            .assert()
            .success();
        ctfix()
            .current_dir(&via_apply)
            .args(["--apply", "--yes", "."])
            .assert()
            .code(0);
        assert_eq!(
            snapshot(&via_patch),
            snapshot(&via_apply),
            "{case}: git apply and --apply differ"
        );
    }
}

#[test]
fn colour_follows_the_flag_and_no_color() {
    let tmp = demo();
    let plain = ctfix()
        .current_dir(tmp.path())
        .arg("demo")
        .output()
        .unwrap();
    assert!(
        !plain.stdout.contains(&0x1b),
        "NO_COLOR output has escape codes"
    );
    let forced = ctfix()
        .current_dir(tmp.path())
        .args(["--color", "always", "demo"])
        .output()
        .unwrap();
    assert!(
        forced.stdout.contains(&0x1b),
        "--color always has no escape codes"
    );
}

#[test]
fn quiet_prints_nothing_but_keeps_the_exit_code() {
    let tmp = demo();
    ctfix()
        .current_dir(tmp.path())
        .args(["--quiet", "demo"])
        .assert()
        .code(1)
        .stdout("");
}

#[test]
fn no_diff_omits_diffs() {
    let tmp = demo();
    ctfix()
        .current_dir(tmp.path())
        .args(["--no-diff", "demo"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("noncompliant"))
        .stdout(predicate::str::contains("+++").not());
}

#[test]
fn clean_tree_exits_zero() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("main.tf"),
        "resource \"aws_s3_bucket\" \"b\" {\n  bucket = \"x\"\n}\n",
    )
    .unwrap();
    ctfix()
        .arg(tmp.path())
        .assert()
        .code(0)
        .stdout(predicate::str::contains("0 trails in 1 Terraform file"));
}

#[test]
fn a_named_file_is_checked_with_its_module_context() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("trail.tf"), "resource \"aws_cloudtrail\" \"t\" {\n  name           = \"trail\"\n  s3_bucket_name = \"logs\"\n}\n").unwrap();
    std::fs::write(
        tmp.path().join("data.tf"),
        "data \"aws_partition\" \"p\" {}\ndata \"aws_caller_identity\" \"me\" {}\n",
    )
    .unwrap();
    let output = ctfix()
        .arg(tmp.path().join("trail.tf"))
        .args(["--format", "json"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let diff = json["changes"][0]["diff"].as_str().unwrap();
    assert!(diff.contains("data.aws_partition.p.partition"), "{diff}");
    assert!(
        diff.contains("data.aws_caller_identity.me.account_id"),
        "{diff}"
    );
    assert!(
        !diff.contains("+data "),
        "no new data source when the module has them: {diff}"
    );
}

#[test]
fn not_a_terraform_file_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("notes.txt");
    std::fs::write(&file, "hello").unwrap();
    ctfix()
        .arg(&file)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a Terraform file"));
}

/// Two modules, `locked/` and `open/`, with one trail each, under a new temporary directory.
fn locked_and_open() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let locked = tmp.path().join("locked");
    let open = tmp.path().join("open");
    for dir in [&locked, &open] {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("main.tf"), "resource \"aws_cloudtrail\" \"t\" {\n  name           = \"trail\"\n  s3_bucket_name = \"logs\"\n}\n").unwrap();
    }
    (tmp, locked, open)
}

#[cfg(unix)]
#[test]
fn read_only_directory_is_an_error_for_that_file_only() {
    use std::os::unix::fs::PermissionsExt;
    let (tmp, locked, open) = locked_and_open();
    let before = std::fs::read(locked.join("main.tf")).unwrap();
    // root writes into a read-only directory; an immutable one (`chattr +i`) binds root too.
    let guard = if nix_is_root() {
        let Some(guard) = require(Immutable::set(&locked)) else {
            return;
        };
        Some(guard)
    } else {
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
        None
    };
    let output = ctfix()
        .args(["--apply", "--yes"])
        .arg(tmp.path())
        .output()
        .unwrap();
    drop(guard);
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(std::fs::read_to_string(open.join("main.tf"))
        .unwrap()
        .contains("kms_key_id"));
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("locked/main.tf") && stderr.contains("cannot create a temporary file"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(locked.join("main.tf")).unwrap(), before);
}

/// Answers "all", after replacing a file by a directory of the same name.
struct ReplaceByDirectory(PathBuf);

impl ctfix::cli::Prompter for ReplaceByDirectory {
    fn is_interactive(&self) -> bool {
        true
    }

    fn choose(&mut self, _question: &str) -> std::io::Result<Choice> {
        std::fs::remove_file(&self.0)?;
        std::fs::create_dir(&self.0)?;
        std::fs::write(self.0.join("kept"), "the user's")?;
        Ok(Choice::All)
    }
}

#[test]
fn file_replaced_by_a_directory_is_an_error_for_that_file_only() {
    use clap::Parser;
    // Between the read and the write (at the prompt) `locked/main.tf` becomes a directory:
    // ctfix must not write over it, nor into it, and must still fix the other module. Works
    // the same for root, which permission bits do not stop.
    let (tmp, locked, open) = locked_and_open();
    let replaced = locked.join("main.tf");
    let args = ctfix::cli::Args::parse_from([
        "ctfix",
        "--apply",
        "--no-diff",
        "--color",
        "never",
        tmp.path().to_str().unwrap(),
    ]);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut prompter = ReplaceByDirectory(replaced.clone());
    let status = ctfix::cli::run(&args, &mut out, &mut err, &mut prompter).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned() + &String::from_utf8_lossy(&err);
    assert_eq!(status, ctfix::ExitStatus::Error, "{text}");
    assert!(
        text.lines().any(|l| l.contains("locked/main.tf")
            && l.contains("is no longer a regular file")
            && l.contains("left untouched")),
        "{text}"
    );
    assert!(replaced.is_dir(), "the directory was replaced");
    assert_eq!(
        snapshot_all(&replaced),
        [(PathBuf::from("kept"), b"the user's".to_vec())],
        "ctfix wrote into the directory"
    );
    assert_eq!(leftover_temp_files(tmp.path()), Vec::<PathBuf>::new());
    assert!(std::fs::read_to_string(open.join("main.tf"))
        .unwrap()
        .contains("kms_key_id"));
}

#[cfg(unix)]
fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
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

/// Runs `ctfix --apply <root>` in-process with scripted answers; returns the status, stdout
/// and the questions asked.
fn run_scripted(root: &Path, answers: &[Choice]) -> (ctfix::ExitStatus, String, Vec<String>) {
    use clap::Parser;
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
    (status, String::from_utf8(out).unwrap(), prompter.asked)
}

/// The demo's files that hold a fix, in the order ctfix asks about them.
const DEMO_CHANGES: [&str; 3] = [
    "live/prod/cloudtrail.tf",
    "live/security/trails.tf",
    "live/staging/main.tf",
];

fn fixed_demo_files(root: &Path) -> Vec<&'static str> {
    DEMO_CHANGES
        .into_iter()
        .filter(|file| {
            std::fs::read_to_string(root.join(file))
                .unwrap()
                .contains("Encrypts CloudTrail logs of trail")
        })
        .collect()
}

#[test]
fn interactive_apply_asks_trail_by_trail() {
    let tmp = demo();
    let root = tmp.path().join("demo");
    let (status, out, asked) = run_scripted(&root, &[Choice::Yes, Choice::No, Choice::Yes]);
    assert_eq!(asked.len(), 3, "one question per trail to fix: {asked:?}");
    assert!(asked.iter().all(|q| q == "Write this fix?"));
    // Each question comes after its module's diff.
    for (i, file) in DEMO_CHANGES.iter().enumerate() {
        let header = out.find(&format!("[{}/3] ", i + 1)).unwrap();
        let diff = out
            .find(&format!("+++ b/{}", root.join(file).display()))
            .unwrap();
        assert!(header < diff, "{out}");
    }
    assert_eq!(status, ctfix::ExitStatus::Findings, "one trail is left");
    assert_eq!(
        fixed_demo_files(&root),
        ["live/prod/cloudtrail.tf", "live/staging/main.tf"]
    );
    assert!(out.contains("Left 1 file unchanged."), "{out}");
    assert!(out.contains("Fixed 2 files."), "{out}");
}

#[test]
fn interactive_quit_writes_no_pull_request_body() {
    use clap::Parser;
    let tmp = demo();
    let root = tmp.path().join("demo");
    let body = tmp.path().join("pr.md");
    let args = ctfix::cli::Args::parse_from([
        "ctfix",
        "--apply",
        "--pr-body",
        body.to_str().unwrap(),
        root.to_str().unwrap(),
    ]);
    let mut prompter = Scripted {
        answers: vec![Choice::Quit],
        asked: Vec::new(),
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    ctfix::cli::run(&args, &mut out, &mut err, &mut prompter).unwrap();
    assert!(!body.exists(), "nothing written, nothing to describe");
}

/// `--pr-body` replaces only a body an earlier run wrote: never a file of the user's, not
/// even one in the tree ctfix fixes.
#[test]
fn the_pull_request_body_overwrites_only_an_earlier_body() {
    let tmp = demo();
    let root = tmp.path().join("demo");
    let body = tmp.path().join("pr.md");
    let apply = |root: &Path, body: &Path| {
        Command::cargo_bin("ctfix")
            .unwrap()
            .args(["--apply", "--yes", "-q", "--pr-body"])
            .arg(body)
            .arg(root)
            .output()
            .unwrap()
    };
    // A README and the trail's own file: refused before anything is written.
    let notes = tmp.path().join("README.md");
    std::fs::write(&notes, "# My notes\n").unwrap();
    let trail_file = root.join("live/prod/cloudtrail.tf");
    for target in [&notes, &trail_file] {
        let before = snapshot(tmp.path());
        let output = apply(&root, target);
        assert_eq!(output.status.code(), Some(2), "{target:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("is not a pull-request body ctfix wrote"),
            "{stderr}"
        );
        assert_eq!(
            snapshot(tmp.path()),
            before,
            "{target:?} or a fix was written"
        );
    }
    // A new file, then a body of an earlier run, are written.
    assert_eq!(apply(&root, &body).status.code(), Some(0));
    let first = std::fs::read_to_string(&body).unwrap();
    assert!(first.starts_with("ctfix found "), "{first}");
    let again = demo();
    let output = apply(&again.path().join("demo"), &body);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(std::fs::read_to_string(&body)
        .unwrap()
        .starts_with("ctfix found "));
}

#[test]
fn interactive_all_writes_the_rest_without_asking() {
    let tmp = demo();
    let root = tmp.path().join("demo");
    let (status, out, asked) = run_scripted(&root, &[Choice::No, Choice::All]);
    assert_eq!(asked.len(), 2);
    assert_eq!(status, ctfix::ExitStatus::Findings);
    assert_eq!(
        fixed_demo_files(&root),
        ["live/security/trails.tf", "live/staging/main.tf"]
    );
    assert!(out.contains("Fixed 2 files."), "{out}");
}

#[test]
fn interactive_quit_writes_nothing_more() {
    let tmp = demo();
    let root = tmp.path().join("demo");
    let before = snapshot(&root);
    let (status, out, asked) = run_scripted(&root, &[Choice::Quit]);
    assert_eq!(asked.len(), 1);
    assert_eq!(status, ctfix::ExitStatus::Findings);
    assert_eq!(snapshot(&root), before, "quitting first writes nothing");
    assert!(out.contains("Left 3 files unchanged."), "{out}");

    let (status, _, asked) = run_scripted(&root, &[Choice::Yes, Choice::Quit]);
    assert_eq!(asked.len(), 2);
    assert_eq!(status, ctfix::ExitStatus::Findings);
    assert_eq!(fixed_demo_files(&root), ["live/prod/cloudtrail.tf"]);
}

#[test]
fn interactive_apply_through_a_real_terminal() {
    if require(command_works("script", &["--version"])).is_none() {
        return;
    }
    let tmp = demo();
    let root = tmp.path().join("demo");
    let command = format!(
        "{} --apply --no-diff --color never {}",
        env!("CARGO_BIN_EXE_ctfix"),
        root.display()
    );
    // `script` gives ctfix a pseudo-terminal; the answer arrives once the question is up.
    let output = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "(sleep 1; printf xa) | timeout 60 script -qefc '{command}' /dev/null"
        ))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("[1/3] ") && text.contains("Write this fix? [y]es [n]o [a]ll [q]uit [?]help"),
        "{text}"
    );
    assert!(
        text.contains("(one key: y, n, a, q/Esc, or ? for help)"),
        "a stray key gets a hint: {text}"
    );
    assert!(text.contains("Fixed 3 files."), "{text}");
    assert!(
        std::fs::read_to_string(root.join("live/prod/cloudtrail.tf"))
            .unwrap()
            .contains("kms_key_id")
    );
}

#[test]
fn sarif_results_carry_fixes_that_rebuild_what_apply_writes() {
    let tmp = demo();
    let output = ctfix()
        .current_dir(tmp.path())
        .args(["--format", "sarif", "demo"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let sarif: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let run = &sarif["runs"][0];
    assert_eq!(
        run["tool"]["driver"]["rules"][0]["id"],
        "cloudtrail-kms-cmk"
    );
    let results = run["results"].as_array().unwrap();
    // The compliant trail is not a result; the three noncompliant ones are errors.
    assert_eq!(results.len(), 3);
    assert!(results.iter().all(|r| r["level"] == "error"));
    assert_eq!(run["invocations"][0]["executionSuccessful"], true);
    assert_eq!(
        results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "demo/live/prod/cloudtrail.tf"
    );
    assert_eq!(
        results[0]["locations"][0]["physicalLocation"]["region"]["startLine"],
        2
    );

    // Applying every fix's replacements gives the bytes --apply writes.
    let mut rebuilt = Vec::new();
    for result in results {
        for change in result["fixes"][0]["artifactChanges"].as_array().unwrap() {
            let uri = change["artifactLocation"]["uri"].as_str().unwrap();
            let before = std::fs::read(tmp.path().join(uri)).unwrap();
            let mut after = Vec::new();
            let mut at = 0;
            for replacement in change["replacements"].as_array().unwrap() {
                let region = &replacement["deletedRegion"];
                let offset = region["byteOffset"].as_u64().unwrap() as usize;
                after.extend_from_slice(&before[at..offset]);
                after.extend_from_slice(
                    replacement["insertedContent"]["text"]
                        .as_str()
                        .unwrap()
                        .as_bytes(),
                );
                at = offset + region["byteLength"].as_u64().unwrap() as usize;
            }
            after.extend_from_slice(&before[at..]);
            rebuilt.push((uri.to_owned(), after));
        }
    }
    assert_eq!(rebuilt.len(), 3);
    ctfix()
        .current_dir(tmp.path())
        .args(["--apply", "--yes", "demo"])
        .assert()
        .code(0);
    for (uri, bytes) in rebuilt {
        assert_eq!(
            std::fs::read(tmp.path().join(&uri)).unwrap(),
            bytes,
            "{uri}"
        );
    }
}

#[test]
fn diffs_of_paths_with_spaces_apply_with_patch_and_git() {
    let tmp = tempfile::tempdir().unwrap();
    write_trail_module(&tmp.path().join("my module"), "spaced");
    let output = ctfix()
        .current_dir(tmp.path())
        .arg("my module")
        .output()
        .unwrap();
    let diff = String::from_utf8(output.stdout).unwrap();
    let patch: String = diff
        .lines()
        .skip_while(|l| !l.starts_with("--- "))
        .take_while(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(patch.starts_with("--- a/my module/main.tf\t\n"), "{patch}");
    let patch_file = tmp.path().join("fix.patch");
    std::fs::write(&patch_file, &patch).unwrap();
    for (tool, args) in [
        ("git", vec!["apply", "--check"]),
        ("patch", vec!["-p1", "--dry-run", "-i"]),
    ] {
        if require(command_works(tool, &["--version"])).is_none() {
            continue;
        }
        let output = Command::new(tool)
            .current_dir(tmp.path())
            .args(&args)
            .arg(&patch_file)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{tool}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn an_organization_trail_fix_asks_for_the_log_archive_readers() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/organization-trail/input.tf"),
        tmp.path().join("main.tf"),
    )
    .unwrap();
    let output = run_ctfix(&["--format", "json"], tmp.path());
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let note = json["findings"][0]["fix"]["note"]
        .as_str()
        .unwrap_or_default();
    assert!(
        note.contains("log-archive account") && note.contains("kms:Decrypt"),
        "{json:#}"
    );
    // A trail that is not an organization trail gets no such note.
    write_trail_module(&tmp.path().join("plain"), "plain");
    let output = run_ctfix(&["--format", "json"], &tmp.path().join("plain"));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(json["findings"][0]["fix"].get("note").is_none(), "{json:#}");
}

/// Runs the ctfix binary as an unprivileged user in `dir` (as root, through `runuser -u
/// nobody` with a copy of the binary nobody can run), or says why that is impossible here.
fn run_unprivileged(dir: &Path, args: &[&str]) -> Result<std::process::Output, String> {
    if !nix_is_root() {
        return Ok(ctfix().current_dir(dir).args(args).output().unwrap());
    }
    let binary = dir.join(".ctfix-under-test");
    std::fs::copy(env!("CARGO_BIN_EXE_ctfix"), &binary).map_err(|e| e.to_string())?;
    let output = Command::new("runuser")
        .args(["-u", "nobody", "--"])
        .arg(&binary)
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .map_err(|e| format!("`runuser` is not installed: {e}"))?;
    std::fs::remove_file(&binary).ok();
    // runuser's own failure (no such user, not allowed) is not ctfix's.
    if output.status.code() == Some(125) || output.status.code() == Some(126) {
        return Err(format!(
            "`runuser -u nobody` cannot run ctfix here: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(output)
}

/// Lets the user [`run_unprivileged`] runs as own and change everything under `root`.
fn make_world_accessible(root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if nix_is_root() {
        let _ = Command::new("chown")
            .args(["-R", "nobody:"])
            .arg(root)
            .status();
    }
    for entry in walkdir::WalkDir::new(root) {
        let entry = entry.unwrap();
        let mode = if entry.file_type().is_dir() {
            0o777
        } else {
            0o666
        };
        std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

#[test]
fn an_unreadable_file_is_an_error_and_blocks_its_modules_fixes() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = demo();
    let root = tmp.path().join("demo");
    make_world_accessible(tmp.path());
    // A trail file nobody can read, and a sibling of another trail that declares data
    // sources a fix would otherwise add again.
    for file in ["live/staging/main.tf", "live/prod/s3.tf"] {
        std::fs::set_permissions(root.join(file), std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    let before = snapshot_all(&root);
    let Some(output) = require(run_unprivileged(
        &root,
        &["--apply", "--yes", "--no-diff", "."],
    )) else {
        return;
    };
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    for file in ["live/staging/main.tf", "live/prod/s3.tf"] {
        assert!(
            stderr.contains(&format!("{file}: cannot read file")),
            "{stderr}"
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("not written: ctfix cannot read live/prod/s3.tf"),
        "{stdout}"
    );
    let after = snapshot_all(&root);
    let changed: Vec<_> = before
        .iter()
        .zip(&after)
        .filter(|(a, b)| a != b)
        .map(|(a, _)| a.0.clone())
        .collect();
    assert_eq!(
        changed,
        [PathBuf::from("live/security/trails.tf")],
        "only the module ctfix could read whole is fixed: {stderr}"
    );
}

#[test]
fn overlapping_paths_check_each_module_once() {
    let tmp = demo();
    let root = tmp.path().join("demo");
    for args in [
        vec![".", "live"],
        vec!["live/prod", "./live/prod"],
        vec!["live/prod/cloudtrail.tf", "live/prod"],
    ] {
        let output = ctfix()
            .current_dir(&root)
            .args(["--format", "json"])
            .args(&args)
            .output()
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let resources: Vec<&str> = json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["resource"].as_str().unwrap())
            .collect();
        let mut unique = resources.clone();
        unique.dedup();
        assert_eq!(resources, unique, "{args:?}: a trail reported twice");
    }
    let output = ctfix()
        .current_dir(&root)
        .args(["--apply", "--yes", ".", "live"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
}

#[test]
fn a_closed_output_pipe_keeps_the_exit_status() {
    // `ctfix | head -1` under `set -o pipefail` is a CI gate: it must still fail on findings.
    let tmp = demo();
    for format in ["text", "json"] {
        let mut child = ctfix()
            .current_dir(tmp.path())
            .args(["--format", format, "demo"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes before ctfix has written anything: every write meets a closed pipe.
        drop(child.stdout.take());
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(1), "{format}");
    }
}

#[test]
fn sarif_reports_files_ctfix_could_not_check() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("broken.tf"),
        "resource \"aws_cloudtrail\" \"t\" {\n  name = \n}\n",
    )
    .unwrap();
    let output = ctfix()
        .current_dir(tmp.path())
        .args(["--format", "sarif", "broken.tf", "missing.tf"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let sarif: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let invocation = &sarif["runs"][0]["invocations"][0];
    assert_eq!(invocation["executionSuccessful"], false);
    let notes = invocation["toolExecutionNotifications"].as_array().unwrap();
    let uris: Vec<&str> = notes
        .iter()
        .map(|n| {
            n["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(uris, ["broken.tf", "missing.tf"]);
    assert_eq!(
        notes[0]["locations"][0]["physicalLocation"]["region"]["startLine"],
        2
    );
    assert!(notes.iter().all(|n| n["level"] == "error"));
}

#[test]
fn a_fix_whose_edits_are_in_another_file_is_applied() {
    // Regression: extending the key policy in kms.tf for a trail in cloudtrail.tf was written
    // but reported `applied: false`, with exit 1.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("cloudtrail.tf"),
        "resource \"aws_cloudtrail\" \"main\" {\n  name           = \"main-trail\"\n  s3_bucket_name = \"audit-logs\"\n  kms_key_id     = aws_kms_key.trail.arn\n}\n",
    )
    .unwrap();
    let kms = tmp.path().join("kms.tf");
    std::fs::write(
        &kms,
        r#"data "aws_partition" "current" {}
data "aws_caller_identity" "current" {}

resource "aws_kms_key" "trail" {
  description         = "CloudTrail logs"
  enable_key_rotation = true
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "Admin"
        Effect    = "Allow"
        Principal = { AWS = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudTrailEncrypt"
        Effect    = "Allow"
        Principal = { Service = "cloudtrail.amazonaws.com" }
        Action    = "kms:GenerateDataKey*"
        Resource  = "*"
      }
    ]
  })
}
"#,
    )
    .unwrap();
    let kms_before = std::fs::read(&kms).unwrap();
    let trail_before = std::fs::read(tmp.path().join("cloudtrail.tf")).unwrap();
    let output = ctfix()
        .current_dir(tmp.path())
        .args([
            "--apply",
            "--yes",
            "--unsafe-fixes",
            "--format",
            "json",
            ".",
        ])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{json:#}\n{}",
        stderr_of(&output)
    );
    let fix = &json["findings"][0]["fix"];
    assert_eq!(fix["applied"], true, "{json:#}");
    let kms_after = std::fs::read_to_string(&kms).unwrap();
    assert_ne!(kms_after.as_bytes(), kms_before, "kms.tf was not written");
    assert!(kms_after.contains("kms:DescribeKey"), "{kms_after}");
    assert_eq!(
        std::fs::read(tmp.path().join("cloudtrail.tf")).unwrap(),
        trail_before
    );

    // The same in text: the fix is reported written.
    std::fs::write(&kms, &kms_before).unwrap();
    let output = ctfix()
        .current_dir(tmp.path())
        .args(["--apply", "--yes", "--unsafe-fixes", "--no-diff", "."])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        stderr_of(&output)
    );
    assert!(stdout.contains("unsafe, applied"), "{stdout}");
    assert!(!stdout.contains("not written"), "{stdout}");
}

#[test]
fn a_reference_to_an_undeclared_key_gets_an_unsafe_fix_with_a_note() {
    for (case, needles) in [
        (
            "key-not-found",
            &["declares no aws_kms_key", "a file ctfix did not read"][..],
        ),
        (
            "key-not-found-close-label",
            &["did you mean aws_kms_key.test?"][..],
        ),
    ] {
        let input = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(case)
            .join("input.tf");
        let output = run_ctfix(&["--format", "json"], &input);
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let finding = &json["findings"][0];
        assert_eq!(finding["reason"], "key-not-found", "{json:#}");
        assert_eq!(finding["fix"]["applicability"], "unsafe", "{json:#}");
        assert_eq!(finding["fix"]["selected"], false, "{json:#}");
        let note = finding["fix"]["note"].as_str().unwrap_or_default();
        for needle in needles {
            assert!(note.contains(needle), "{case}: {note}");
        }
    }
}

/// Answers "all", after replacing a module's directory by a file of the same name.
struct ReplaceDirectoryByFile(PathBuf);

impl ctfix::cli::Prompter for ReplaceDirectoryByFile {
    fn is_interactive(&self) -> bool {
        true
    }

    fn choose(&mut self, _question: &str) -> std::io::Result<Choice> {
        std::fs::remove_dir_all(&self.0)?;
        std::fs::write(&self.0, "the user's")?;
        Ok(Choice::All)
    }
}

#[test]
fn a_file_that_cannot_be_looked_at_is_not_reported_deleted() {
    use clap::Parser;
    // Its directory became a file at the prompt: looking at `locked/main.tf` fails with "not
    // a directory", which is not "deleted" (cargo-mutants: every stat error reported as a
    // deletion went unnoticed).
    let (tmp, locked, open) = locked_and_open();
    let args = ctfix::cli::Args::parse_from([
        "ctfix",
        "--apply",
        "--no-diff",
        "--color",
        "never",
        tmp.path().to_str().unwrap(),
    ]);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut prompter = ReplaceDirectoryByFile(locked.clone());
    let status = ctfix::cli::run(&args, &mut out, &mut err, &mut prompter).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned() + &String::from_utf8_lossy(&err);
    assert_eq!(status, ctfix::ExitStatus::Error, "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("locked/main.tf") && l.contains("left untouched"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("cannot stat file") && line.contains("Not a directory"),
        "{line}"
    );
    assert!(!line.contains("deleted"), "{line}");
    assert_eq!(std::fs::read_to_string(&locked).unwrap(), "the user's");
    assert!(std::fs::read_to_string(open.join("main.tf"))
        .unwrap()
        .contains("kms_key_id"));
}

/// Declining one of two trails of a module writes the other's fix, and the declined trail is
/// still reported (README: "the module is planned again with the accepted ones only").
#[test]
fn declining_one_trail_of_a_module_writes_the_other() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("main.tf");
    std::fs::write(
        &file,
        "resource \"aws_cloudtrail\" \"main\" {\n  name           = \"main-trail\"\n  s3_bucket_name = \"my-bucket\"\n}\n\nresource \"aws_cloudtrail\" \"second\" {\n  name           = \"second\"\n  s3_bucket_name = \"my-bucket\"\n  kms_key_id     = \"\"\n}\n",
    )
    .unwrap();
    for answers in [[Choice::No, Choice::Yes], [Choice::Yes, Choice::No]] {
        let before = std::fs::read_to_string(&file).unwrap();
        let (status, out, asked) = run_scripted(tmp.path(), &answers);
        assert_eq!(asked.len(), 2, "{out}");
        assert_eq!(status, ctfix::ExitStatus::Findings, "{out}");
        assert!(out.contains("2 trails in 1 Terraform file"), "{out}");
        assert!(out.contains("Fixed 1 file."), "{out}");
        let after = std::fs::read_to_string(&file).unwrap();
        assert_ne!(after, before, "{answers:?}: nothing written\n{out}");
        std::fs::write(&file, &before).unwrap();
    }
}

/// A file named with a leading `./` (as shells complete it, and as a run on `.` hands the
/// files of a module to its replanning after a declined trail) is judged like `main.tf`: it
/// used to match none of the module's files, and its trails went unreported.
#[test]
fn a_file_named_with_a_leading_dot_slash_is_judged() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("main.tf"),
        "resource \"aws_cloudtrail\" \"t\" {\n  name           = \"t\"\n  s3_bucket_name = \"b\"\n}\n",
    )
    .unwrap();
    for spelling in ["main.tf", "./main.tf", ".//main.tf"] {
        Command::cargo_bin("ctfix")
            .unwrap()
            .current_dir(tmp.path())
            .args(["--no-diff", spelling])
            .assert()
            .code(1)
            .stdout(predicate::str::contains("1 trail in 1 Terraform file"));
    }
}
