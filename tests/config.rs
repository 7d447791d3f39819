//! `.ctfix.toml` through the built binary: which file a run uses, errors in it (position,
//! exit 2, nothing written), flags overriding it, and the `fail-on-unknown` gate. What each
//! key does to the written Terraform is in the `config-*` fixtures.

mod support;

use std::path::Path;

use assert_cmd::prelude::*;
use predicates::prelude::*;
use support::*;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// `outer/.ctfix.toml` (7 days) above `outer/repo` (a repository), which holds
/// `a/.ctfix.toml` (10 days) above the module `a/m`, and the module `b` with no file of its
/// own.
fn nested_configs() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let outer = tmp.path().join("outer");
    write(
        &outer.join(".ctfix.toml"),
        "[generated-key]\ndeletion-window-days = 7\n",
    );
    std::fs::create_dir_all(outer.join("repo/.git")).unwrap();
    write(
        &outer.join("repo/a/.ctfix.toml"),
        "[generated-key]\ndeletion-window-days = 10\n",
    );
    write(&outer.join("repo/a/m/main.tf"), &trail_tf("main"));
    write(&outer.join("repo/b/main.tf"), &trail_tf("main"));
    tmp
}

fn deletion_window(repo: &Path, args: &[&str]) -> String {
    let output = ctfix().current_dir(repo).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("+  deletion_window_in_days = "))
        .unwrap_or_else(|| panic!("no key in:\n{stdout}"))
        .to_owned()
}

#[test]
fn the_nearest_config_wins() {
    let tmp = nested_configs();
    let repo = tmp.path().join("outer/repo");
    assert_eq!(deletion_window(&repo, &["a/m"]), "10");
    assert_eq!(deletion_window(&repo.join("a/m"), &["."]), "10");
}

#[test]
fn config_discovery_stops_at_the_repository_top() {
    let tmp = nested_configs();
    let repo = tmp.path().join("outer/repo");
    // outer/.ctfix.toml (7 days) belongs to no repository of b: the template's 30.
    assert_eq!(deletion_window(&repo, &["b"]), "30");
}

#[test]
fn config_flag_overrides_discovery() {
    let tmp = nested_configs();
    let repo = tmp.path().join("outer/repo");
    assert_eq!(
        deletion_window(&repo, &["--config", "../.ctfix.toml", "a/m"]),
        "7"
    );
}

#[test]
fn paths_with_different_configs_are_refused() {
    let tmp = nested_configs();
    let repo = tmp.path().join("outer/repo");
    std::fs::write(repo.join("b/.ctfix.toml"), "unsafe-fixes = true\n").unwrap();
    let before = snapshot_all(&repo);
    ctfix()
        .current_dir(&repo)
        .args(["--apply", "--yes", "a/m", "b"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("run ctfix once per repository"));
    assert_eq!(snapshot_all(&repo), before);
}

#[test]
fn a_path_without_a_config_beside_one_with_is_refused() {
    let tmp = nested_configs();
    let repo = tmp.path().join("outer/repo");
    ctfix()
        .current_dir(&repo)
        .args(["a/m", "b"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("uses no configuration file"));
    // A missing path is the walk's error, as without a configuration.
    ctfix()
        .current_dir(&repo)
        .args(["a/m", "nope"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("nope: cannot read path"));
}

#[test]
fn each_invalid_config_is_an_error_with_its_position_and_nothing_is_written() {
    let cases = [
        ("unsafe-fixes = true\ncolour = 1\n", "2:1", "unknown field `colour`"),
        ("fail-on-unknown = \"yes\"\n", "1:19", "invalid type"),
        ("exclude = \"legacy\"\n", "1:11", "invalid type"),
        ("exclude = [\"a/[\"]\n", "1:12", "is not a glob"),
        ("[generated-key]\ntags = [\"x\"]\n", "2:8", "invalid type"),
        ("[generated-key]\ntags = { \"aws:owner\" = \"x\" }\n", "2:10", "reserved"),
        ("[generated-key]\nalias = \"alias/aws/{trail}\"\n", "2:9", "reserved for AWS"),
        ("[generated-key]\nalias = \"alias/cloudtrail\"\n", "2:9", "must contain {trail}"),
        ("[generated-key]\nalias = \"cloudtrail/{trail}\"\n", "2:9", "must start with alias/"),
        ("[generated-key]\ndeletion-window-days = 6\n", "2:24", "7 to 30"),
        ("[generated-key]\ndeletion-window-days = 31\n", "2:24", "7 to 30"),
        ("[generated-key]\nmulti-region = 1\n", "2:16", "invalid type"),
        ("[generated-key]\nrotation = true\n", "2:1", "unknown field `rotation`"),
        (
            "use-key = \"arn:aws:kms:eu-west-1:123:key/1234abcd-12ab-34cd-56ef-1234567890ab\"\n",
            "1:11",
            "not 12 digits",
        ),
        (
            "use-key = \"arn:aws:kms:eu-west-1:123456789012:alias/central\"\n",
            "1:11",
            "alias ARN",
        ),
        (
            "use-key = \"arn:aws:kms:west:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab\"\n",
            "1:11",
            "not a region",
        ),
        (
            "use-key = \"arn:aws:kms:eu-west-1:123456789012:key/central\"\n",
            "1:11",
            "not a key ID",
        ),
        ("use-key = \"central-key\"\n", "1:11", "neither a key ARN"),
        ("use-key = \"var\"\n", "1:11", "neither a key ARN"),
        ("unsafe-fixes = true\nunsafe-fixes = false\n", "2:1", "duplicate key"),
        ("[generated-key\n", "1:15", ""),
    ];
    for (text, position, words) in cases {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join(".git")).unwrap();
        write(&tmp.path().join(".ctfix.toml"), text);
        write_trail_module(&tmp.path().join("m"), "main");
        let before = snapshot_all(tmp.path());
        let output = ctfix()
            .current_dir(tmp.path())
            .args(["--apply", "--yes", "m"])
            .output()
            .unwrap();
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(2), "{text:?}: {stderr}");
        let expected = format!(".ctfix.toml:{position}: invalid configuration");
        assert!(
            stderr.contains(&expected) && stderr.contains(words),
            "{text:?}: expected {expected:?} and {words:?} in:\n{stderr}"
        );
        assert_eq!(snapshot_all(tmp.path()), before, "{text:?} wrote");
        // Not a word about trails: the tree was not read.
        assert!(
            !String::from_utf8_lossy(&output.stdout).contains("aws_cloudtrail"),
            "{text:?}"
        );
    }
}

#[test]
fn a_missing_config_file_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    write_trail_module(&tmp.path().join("m"), "main");
    ctfix()
        .current_dir(tmp.path())
        .args(["--config", "nope.toml", "m"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "nope.toml: cannot read the configuration",
        ));
}

/// A module whose only trail reads a variable without a default: status unknown.
fn undecided() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join(".git")).unwrap();
    write(
        &tmp.path().join("m/main.tf"),
        "variable \"key\" {\n  type = string\n}\n\nresource \"aws_cloudtrail\" \"main\" {\n  name           = \"main\"\n  s3_bucket_name = \"logs\"\n  kms_key_id     = var.key\n}\n",
    );
    tmp
}

fn status(dir: &Path, args: &[&str]) -> i32 {
    ctfix()
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
        .status
        .code()
        .unwrap()
}

#[test]
fn fail_on_unknown_makes_undecided_trails_exit_1() {
    let tmp = undecided();
    let dir = tmp.path();
    assert_eq!(status(dir, &["m"]), 0);
    assert_eq!(status(dir, &["--fail-on-unknown", "m"]), 1);
    assert_eq!(
        status(dir, &["--fail-on-unknown", "--format", "json", "m"]),
        1
    );
    write(&dir.join(".ctfix.toml"), "fail-on-unknown = true\n");
    assert_eq!(status(dir, &["m"]), 1);
    // The flag overrides the file.
    assert_eq!(status(dir, &["--no-fail-on-unknown", "m"]), 0);
    // A decided tree stays 0 under the gate.
    write(&dir.join("m/main.tf"), "# no trail\n");
    assert_eq!(status(dir, &["--fail-on-unknown", "m"]), 0);
}

#[test]
fn unsafe_fixes_from_the_file_and_the_flag_that_overrides_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join(".git")).unwrap();
    write(
        &dir.join("m/main.tf"),
        "resource \"aws_cloudtrail\" \"main\" {\n  name           = \"main\"\n  s3_bucket_name = \"logs\"\n  kms_key_id     = \"arn:aws:kms:us-east-1:111122223333:alias/org\"\n}\n",
    );
    write(&dir.join(".ctfix.toml"), "unsafe-fixes = true\n");
    ctfix()
        .current_dir(dir)
        .arg("m")
        .assert()
        .code(1)
        .stdout(predicate::str::contains("fix (unsafe, available)"));
    ctfix()
        .current_dir(dir)
        .args(["--no-unsafe-fixes", "m"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "fix (unsafe, needs --unsafe-fixes)",
        ));
}

#[test]
fn exclude_globs_are_relative_to_the_config_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join(".git")).unwrap();
    write(
        &dir.join(".ctfix.toml"),
        "exclude = [\"live/legacy\", \"**/vendor/**\"]\n",
    );
    write_trail_module(&dir.join("live/legacy"), "old");
    write_trail_module(&dir.join("live/prod/vendor/x"), "vendored");
    write_trail_module(&dir.join("live/prod"), "prod");
    ctfix()
        .current_dir(dir.join("live"))
        .arg(".")
        .assert()
        .code(1)
        .stdout(predicate::str::contains("aws_cloudtrail.prod"))
        .stdout(predicate::str::contains("aws_cloudtrail.old").not())
        .stdout(predicate::str::contains("aws_cloudtrail.vendored").not());
}

#[test]
fn a_central_key_cloudtrail_cannot_use_is_an_error_naming_use_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join(".git")).unwrap();
    // A key of the module whose policy lacks CloudTrail's grants.
    let module = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/unusable-central-key.tf");
    write(
        &dir.join("m/main.tf"),
        &std::fs::read_to_string(module).unwrap(),
    );
    write(
        &dir.join(".ctfix.toml"),
        "use-key = \"aws_kms_key.central.arn\"\n",
    );
    let before = snapshot_all(dir);
    ctfix()
        .current_dir(dir)
        .args(["--apply", "--yes", "m"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "the key .ctfix.toml's use-key names (aws_kms_key.central.arn) does not make the trail compliant (key-policy-missing-grant",
        ))
        .stderr(predicate::str::contains("fix that key or change use-key"));
    assert_eq!(snapshot_all(dir), before);
}
