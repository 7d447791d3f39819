//! ctfix over a real Terraform tree, with the same invariants as the fixtures:
//! `CTFIX_REAL_TREE=/path/to/tree cargo test --release --test real_tree -- --ignored --nocapture`.
//! The tree is copied; the copy is checked, fixed and checked again. Nothing of the tree is
//! kept in this repository.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use support::*;

fn copy_terraform_files(from: &Path, to: &Path) -> usize {
    let mut count = 0;
    for entry in walkdir::WalkDir::new(from)
        .into_iter()
        .filter_map(Result::ok)
    {
        let name = entry.file_name().to_string_lossy();
        if !entry.file_type().is_file()
            || !(name.ends_with(".tf") || name.ends_with(".tf.json") || name.ends_with(".tfvars"))
        {
            continue;
        }
        let rel = entry.path().strip_prefix(from).unwrap();
        let target = to.join(rel);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(entry.path(), &target).unwrap();
        if name.ends_with(".tf") {
            count += 1;
        }
    }
    count
}

fn read_all(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| (e.path().to_path_buf(), std::fs::read(e.path()).unwrap()))
        .collect()
}

fn fmt_clean(text: &[u8]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("x.tf");
    std::fs::write(&file, text).unwrap();
    std::process::Command::new("terraform")
        .args(["fmt", "-check"])
        .arg(&file)
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
#[ignore = "needs CTFIX_REAL_TREE=<directory of real Terraform>"]
fn real_tree_invariants() {
    let source = PathBuf::from(std::env::var_os("CTFIX_REAL_TREE").expect("set CTFIX_REAL_TREE"));
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("tree");
    let tf_files = copy_terraform_files(&source, &root);
    let before = read_all(&root);

    let check = run_ctfix(&["--format", "json"], &root);
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(!stderr.contains("panicked"), "ctfix panicked:\n{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&check.stdout).expect("JSON report");
    assert_eq!(read_all(&root), before, "the check wrote files");

    let apply = run_ctfix(&["--apply", "--yes", "--format", "json"], &root);
    let stderr = String::from_utf8_lossy(&apply.stderr);
    assert!(!stderr.contains("panicked"), "ctfix panicked:\n{stderr}");
    let after = read_all(&root);

    let mut changed = 0;
    let mut fmt_checked = 0;
    // fmt-clean files must stay clean: without terraform that part cannot be checked.
    let terraform = require(terraform_missing().map_or(Ok(()), Err)).is_some();
    for (path, old) in &before {
        let new = &after[path];
        if old == new {
            continue;
        }
        changed += 1;
        let new_text = std::str::from_utf8(new).unwrap();
        ctfix::parse::SourceFile::from_bytes(path.clone(), new.clone())
            .and_then(|source| ctfix::parse::parse_source(&source))
            .unwrap_or_else(|e| panic!("{}: fixed file does not parse: {e}", path.display()));
        let old_text = String::from_utf8_lossy(old);
        if let Err(error) = check_lines_kept(&old_text, new_text) {
            panic!("{}: {error}", path.display());
        }
        if terraform && fmt_clean(old) {
            fmt_checked += 1;
            assert!(
                fmt_clean(new),
                "{}: was fmt-clean, is not after the fix",
                path.display()
            );
        }
    }
    assert_eq!(after.len(), before.len(), "files appeared or vanished");

    let again = run_ctfix(&["--apply", "--yes", "--format", "json"], &root);
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(
        again["changes"].as_array().unwrap().len(),
        0,
        "second run changes files: {}",
        again["changes"]
    );
    assert_eq!(read_all(&root), after, "second run changed files");

    let summary = &json["summary"];
    println!(
        "real tree {}: {tf_files} .tf files; {} trails ({} compliant, {} noncompliant, {} unknown, {} suppressed); {} errors; {changed} files changed by --apply ({fmt_checked} fmt-clean before and after); second run: 0 changes",
        source.display(),
        summary["trails"],
        summary["compliant"],
        summary["noncompliant"],
        summary["unknown"],
        summary["suppressed"],
        summary["errors"],
    );
    for error in json["errors"].as_array().unwrap() {
        println!(
            "  error: {}:{}:{}: {}",
            error["path"],
            error["line"],
            error["column"],
            error["message"]
                .as_str()
                .unwrap_or("")
                .lines()
                .next()
                .unwrap_or("")
        );
    }
}
