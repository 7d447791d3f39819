//! README promises that no fixture shows on its own: SARIF for unknown and suppressed trails,
//! links to directories not followed, the pre-commit hooks, and the inputs fuzzing found
//! (`fuzz/seeds/found-*`) replayed through the invariants.

mod support;

#[path = "support/invariants.rs"]
#[allow(dead_code)]
mod invariants;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
        .join("input.tf")
}

#[test]
fn sarif_reports_unknown_as_warning_and_suppressed_as_a_dismissed_error() {
    let tmp = tempfile::tempdir().unwrap();
    for (dir, case) in [
        ("unknown", "variable-no-default"),
        ("suppressed", "suppressed-ctfix"),
    ] {
        std::fs::create_dir_all(tmp.path().join(dir)).unwrap();
        std::fs::copy(fixture(case), tmp.path().join(dir).join("main.tf")).unwrap();
    }
    let output = ctfix()
        .current_dir(tmp.path())
        .args(["--format", "sarif", "."])
        .output()
        .unwrap();
    // Nothing to fix: the unknown trail needs a person, the suppressed one is accepted.
    let sarif: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{sarif:#}");
    let by_uri = |uri: &str| {
        results
            .iter()
            .find(|r| r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == uri)
            .unwrap_or_else(|| panic!("no result for {uri}: {sarif:#}"))
    };
    let unknown = by_uri("unknown/main.tf");
    assert_eq!(unknown["level"], "warning", "{unknown:#}");
    assert!(unknown.get("suppressions").is_none(), "{unknown:#}");
    assert!(unknown.get("fixes").is_none(), "{unknown:#}");
    let suppressed = by_uri("suppressed/main.tf");
    assert_eq!(suppressed["level"], "error", "{suppressed:#}");
    let suppression = &suppressed["suppressions"][0];
    assert_eq!(suppression["kind"], "inSource", "{suppressed:#}");
    assert!(
        suppression["justification"]
            .as_str()
            .is_some_and(|j| j.contains("sandbox account")),
        "{suppressed:#}"
    );
    assert!(suppressed.get("fixes").is_none(), "{suppressed:#}");
    assert_eq!(
        sarif["runs"][0]["invocations"][0]["executionSuccessful"],
        true
    );
}

#[cfg(unix)]
#[test]
fn links_to_directories_are_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    let tree = tmp.path().join("tree");
    let target = write_trail_module(&outside, "elsewhere");
    write_trail_module(&tree.join("inside"), "inside");
    std::os::unix::fs::symlink(&outside, tree.join("linked")).unwrap();
    let before = std::fs::read(&target).unwrap();

    let output = ctfix()
        .current_dir(&tree)
        .args(["--format", "json", "."])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let resources: Vec<&str> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["resource"].as_str().unwrap())
        .collect();
    assert_eq!(resources, ["aws_cloudtrail.inside"], "{json:#}");

    let output = ctfix()
        .current_dir(&tree)
        .args(["--apply", "--yes", "."])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(
        std::fs::read(&target).unwrap(),
        before,
        "written through a link"
    );
    assert!(tree.join("linked").is_symlink());
}

/// The two hooks of `.pre-commit-hooks.yaml`, run as pre-commit runs them: the entry split on
/// spaces, in the repository's top, without file names (`pass_filenames: false`): a trail
/// depends on files a commit may not stage, so the hooks judge the repository as CI does.
#[test]
fn pre_commit_hooks_fail_on_a_trail_to_fix_and_the_fix_hook_writes_it() {
    let hooks = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(".pre-commit-hooks.yaml"),
    )
    .unwrap();
    let field = |id: &str, name: &str| -> String {
        let start = hooks
            .find(&format!("- id: {id}\n"))
            .unwrap_or_else(|| panic!("no hook {id}"));
        hooks[start + 1..]
            .lines()
            .take_while(|l| !l.starts_with("- id:"))
            .find_map(|l| l.trim().strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("{id}: no {name}"))
            .to_owned()
    };
    for id in ["ctfix", "ctfix-fix"] {
        assert_eq!(field(id, "pass_filenames"), "false", "{id}");
        // pre-commit matches `files` with Python's `re.search`.
        let files = regex::Regex::new(&field(id, "files")).unwrap();
        let files = |path: &str| files.is_match(path);
        for staged in [
            "main.tf",
            "m/key.tf",
            "x.tf.json",
            "terraform.tfvars",
            "a.auto.tfvars.json",
            ".ctfix.toml",
            "live/.ctfix.toml",
        ] {
            assert!(files(staged), "{id} runs when {staged} is staged");
        }
        for staged in ["README.md", "main.tfx", "ctfix.toml"] {
            assert!(!files(staged), "{id} does not run for {staged}");
        }
    }
    let run_hook = |id: &str, dir: &Path| {
        let entry: Vec<String> = field(id, "entry")
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        assert_eq!(entry[0], "ctfix", "{id}");
        Command::new(env!("CARGO_BIN_EXE_ctfix"))
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .args(&entry[1..])
            .output()
            .unwrap()
    };

    let tmp = tempfile::tempdir().unwrap();
    let path = write_trail_module(&tmp.path().join("m"), "t");
    // Check hook: the commit fails while the trail needs a fix.
    let output = run_hook("ctfix", tmp.path());
    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("@@"),
        "--no-diff"
    );
    assert!(!std::fs::read_to_string(&path)
        .unwrap()
        .contains("kms_key_id"));
    // Fix hook: writes the safe fix (the file is "staged work": --allow-dirty), exit 0, and
    // pre-commit then stops the commit because a file changed.
    let output = run_hook("ctfix-fix", tmp.path());
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let fixed = std::fs::read_to_string(&path).unwrap();
    assert!(fixed.contains("kms_key_id"));
    // And the check hook passes on the fixed tree.
    let output = run_hook("ctfix", tmp.path());
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    // A commit that changes only the key's file, taking CloudTrail's permission away, fails:
    // the trail in the other file is judged too.
    let key_at = fixed.find("resource \"aws_kms_key\"").unwrap();
    std::fs::write(&path, &fixed[..key_at]).unwrap();
    let key = tmp.path().join("m/key.tf");
    std::fs::write(
        &key,
        fixed[key_at..].replace("kms:GenerateDataKey*", "kms:Decrypt"),
    )
    .unwrap();
    let output = run_hook("ctfix", tmp.path());
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn inputs_fuzzing_found_hold_the_invariants() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&seeds).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("found-") {
            continue;
        }
        // Each as both fuzz targets read it: `pipeline` (a whole file) and `trail_body` (the
        // body of a trail, then text after a NUL byte).
        let bytes = std::fs::read(&path).unwrap();
        let whole = invariants::check_invariants(&bytes);
        let (body, after) = match bytes.iter().position(|&b| b == 0) {
            Some(i) => (&bytes[..i], &bytes[i + 1..]),
            None => (&bytes[..], &[][..]),
        };
        let mut file = b"resource \"aws_cloudtrail\" \"main\" {".to_vec();
        file.extend_from_slice(body);
        file.push(b'}');
        file.extend_from_slice(after);
        let in_a_trail = invariants::check_invariants(&file);
        assert!(
            !whole.trails.is_empty() || !in_a_trail.trails.is_empty(),
            "{name}: no trail found either way"
        );
        replayed += 1;
    }
    assert!(replayed >= 9, "only {replayed} found-* seeds");
}

/// The minimality check itself (`tests/support/lines.rs`): what the fixture, real-tree and
/// invariant tests rely on must refuse what the old check let through.
#[test]
fn the_minimality_check_refuses_lost_or_changed_lines() {
    let before = "resource \"aws_cloudtrail\" \"t\" {\n  name = \"t\"\n\n  kms_key_id = \"\"\n}\n";
    let fixed = "resource \"aws_cloudtrail\" \"t\" {\n  name = \"t\"\n\n  kms_key_id = aws_kms_key.t.arn\n}\n\nresource \"aws_kms_key\" \"t\" {}\n";
    assert_eq!(check_lines_kept(before, fixed), Ok(()));
    for (what, after) in [
        ("a blank line dropped", fixed.replacen("\n\n", "\n", 1)),
        (
            "a closing brace dropped",
            fixed.replacen("arn\n}\n", "arn\n", 1),
        ),
        (
            "the kms_key_id line dropped",
            fixed.replace("  kms_key_id = aws_kms_key.t.arn\n", ""),
        ),
        (
            "the key attribute renamed",
            fixed.replace("kms_key_id =", "kms_key ="),
        ),
        (
            "the trail header changed",
            fixed.replace("\"t\" {\n  name", "\"u\" {\n  name"),
        ),
        (
            "another line changed",
            fixed.replace("name = \"t\"", "name = \"x\""),
        ),
    ] {
        assert!(check_lines_kept(before, &after).is_err(), "{what} passed");
    }
    // A one-line body opened up: the same text plus the kms_key_id line, nothing else.
    let one_line = "resource \"aws_cloudtrail\" \"t\" { name = \"t\" }\n";
    let opened = "resource \"aws_cloudtrail\" \"t\" {\n  name       = \"t\"\n  kms_key_id = aws_kms_key.t.arn\n}\n";
    assert_eq!(check_lines_kept(one_line, opened), Ok(()));
    let extra = opened.replace("  kms_key_id", "  tags = {}\n  kms_key_id");
    assert!(
        check_lines_kept(one_line, &extra).is_err(),
        "an extra attribute passed"
    );
    let lost = opened.replace("  name       = \"t\"\n", "");
    assert!(
        check_lines_kept(one_line, &lost).is_err(),
        "a lost attribute passed"
    );
    // A key's one-line body opened up for its policy: all the policy's lines are inserted,
    // and nothing after them.
    let key = "resource \"aws_kms_key\" \"k\" { description = \"d\" }\n";
    let with_policy = "resource \"aws_kms_key\" \"k\" {\n  description = \"d\"\n\n  policy = jsonencode({\n    Statement = [\n      { Sid = \"A\" },\n    ]\n  })\n}\n";
    assert_eq!(check_lines_kept(key, with_policy), Ok(()));
    let extra = with_policy.replace("  })\n", "  })\n  tags = {}\n");
    assert!(
        check_lines_kept(key, &extra).is_err(),
        "an attribute after the policy passed"
    );
    let lost = with_policy.replace("  description = \"d\"\n", "");
    assert!(
        check_lines_kept(key, &lost).is_err(),
        "a lost attribute beside the policy passed"
    );
    // The last line without a newline may get one; nothing else about it may change.
    assert_eq!(check_lines_kept("a = 1", "a = 1\n"), Ok(()));
    assert!(check_lines_kept("a = 1", "a = 2\n").is_err());
}

/// README: a key policy in a heredoc gets a display-only fix showing "the exact JSON
/// statements to add" (cargo-mutants: an empty statement list went unnoticed).
#[test]
fn a_heredoc_policy_gets_the_json_statements_to_add() {
    let output = ctfix()
        .args(["--format", "json"])
        .arg(fixture("key-policy-heredoc-missing-grant"))
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let fix = &json["findings"][0]["fix"];
    assert_eq!(fix["applicability"], "display-only", "{json:#}");
    let note = fix["note"].as_str().unwrap();
    let statements: serde_json::Value = serde_json::from_str(&note[note.find('[').unwrap()..])
        .unwrap_or_else(|e| panic!("no JSON statements in the note ({e}): {note}"));
    let statements = statements.as_array().unwrap();
    for action in ["kms:GenerateDataKey*", "kms:DescribeKey"] {
        assert!(
            statements.iter().any(|s| s["Action"] == action
                && s["Effect"] == "Allow"
                && s["Principal"]["Service"] == "cloudtrail.amazonaws.com"),
            "{action} missing: {note}"
        );
    }
}

/// `lifecycle { ignore_changes = [kms_key_id] }` (or `all`) keeps an existing trail's key
/// whatever the configuration says: the verdict and the fix say so, also once fixed.
#[test]
fn a_trail_ignoring_key_changes_is_told_so() {
    let judge = |lifecycle: &str| -> serde_json::Value {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join("main.tf"),
            format!("resource \"aws_cloudtrail\" \"t\" {{\n  name           = \"trail-t\"\n  s3_bucket_name = \"b\"\n\n  lifecycle {{\n    ignore_changes = {lifecycle}\n  }}\n}}\n"),
        )
        .unwrap();
        let output = ctfix()
            .args(["--format", "json"])
            .arg(tmp.path())
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()["findings"][0].clone()
    };
    for covering in ["[kms_key_id]", "[tags, kms_key_id]", "all"] {
        let finding = judge(covering);
        let note = finding["fix"]["note"].as_str().unwrap_or("");
        assert!(
            note.contains("lifecycle.ignore_changes covers kms_key_id"),
            "{covering}: {finding:#}"
        );
        assert!(
            finding["message"]
                .as_str()
                .unwrap()
                .contains("ignore_changes"),
            "{covering}"
        );
    }
    let finding = judge("[tags]");
    assert!(finding["fix"]["note"].is_null(), "{finding:#}");
}
