//! Adversarial input, through the built binary: every case must end with a clear message
//! (path, what happened, what to do) and exit status 2 when something could not be done, every
//! other file processed normally, no crash, and no byte of user data changed except by a fix.
//!
//! Large trees and files are generated in temporary directories at test time.

#![cfg(unix)]

#[path = "support/invariants.rs"]
#[allow(dead_code)]
mod invariants;
mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Instant;

use support::*;

/// `ctfix --apply --yes --no-diff .` in `root`.
fn apply_in(root: &Path) -> Output {
    ctfix()
        .current_dir(root)
        .args(["--apply", "--yes", "--no-diff", "."])
        .output()
        .unwrap()
}

/// `ctfix --format json .` in `root`, parsed.
fn check_json(root: &Path) -> (Option<i32>, serde_json::Value) {
    let output = ctfix()
        .current_dir(root)
        .args(["--format", "json", "."])
        .output()
        .unwrap();
    let json = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e}); status {:?}; stderr:\n{}",
            output.status,
            stderr_of(&output)
        )
    });
    (output.status.code(), json)
}

fn is_fixed(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| text.contains("kms_key_id"))
}

/// The stderr line naming `path` that holds every one of `needles`.
fn error_line(output: &Output, path: &str, needles: &[&str]) -> String {
    let stderr = stderr_of(output);
    stderr
        .lines()
        .find(|l| l.contains(path) && needles.iter().all(|n| l.contains(n)))
        .unwrap_or_else(|| panic!("no error for {path} with {needles:?} in:\n{stderr}"))
        .to_owned()
}

/// Asserts a clean exit status: no crash (a signal, or Rust's 101 for a panic).
fn assert_no_crash(output: &Output) {
    let code = output.status.code();
    assert!(
        matches!(code, Some(0..=2)),
        "ctfix crashed: {:?}\n{}",
        output.status,
        stderr_of(output)
    );
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
fn garbage(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

// --- binary garbage and encodings --------------------------------------------------------------

#[test]
fn binary_garbage_and_bad_encodings_are_reported_and_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let good = write_trail_module(&root.join("good"), "good");

    // Each bad file sits beside a trail, so its module is read; each names `aws_cloudtrail`
    // so that it would be parsed for its own sake too.
    let mut random = garbage(64 << 10, 0x5eed);
    random.splice(
        1000..1000,
        b"resource \"aws_cloudtrail\" \"x\" {}".iter().copied(),
    );
    let mut valid_utf8_garbage: Vec<u8> = garbage(16 << 10, 42)
        .into_iter()
        .map(|b| b & 0x7f) // ASCII, control characters and NULs included
        .collect();
    valid_utf8_garbage
        .extend_from_slice(b"\nresource \"aws_cloudtrail\" \"y\" { \x1b[2J\x1b]0;owned\x07 }\n");
    let latin1 = b"# caf\xe9\nresource \"aws_cloudtrail\" \"z\" {\n  name = \"z\"\n}\n".to_vec();
    let utf16: Vec<u8> = [0xff, 0xfe]
        .into_iter()
        .chain(
            trail_tf("w")
                .encode_utf16()
                .flat_map(|unit| unit.to_le_bytes()),
        )
        .collect();
    let cases: [(&str, Vec<u8>, &[&str]); 4] = [
        (
            "random",
            random,
            &["not valid UTF-8", "convert it to UTF-8"],
        ),
        (
            "controls",
            valid_utf8_garbage,
            &["cannot parse HCL", "leaves this file untouched"],
        ),
        ("latin1", latin1, &["bad.tf:1:6", "not valid UTF-8"]),
        ("utf16", utf16, &["UTF-16", "save it as UTF-8"]),
    ];
    for (name, bytes, _) in &cases {
        write_trail_module(&root.join(name), name);
        std::fs::write(root.join(name).join("bad.tf"), bytes).unwrap();
    }
    let before = snapshot_all(root);

    let output = apply_in(root);
    assert_no_crash(&output);
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    for (name, bytes, needles) in &cases {
        let path = format!("{name}/bad.tf");
        error_line(&output, &path, needles);
        assert_eq!(
            &std::fs::read(root.join(&path)).unwrap(),
            bytes,
            "{path} changed"
        );
        // The module's good file is still fixed.
        assert!(is_fixed(&root.join(name).join("main.tf")), "{name}/main.tf");
    }
    assert!(is_fixed(&good));
    // What a terminal would act on never reaches it.
    assert!(
        !output.stderr.contains(&0x1b) && !output.stdout.contains(&0x1b),
        "escape sequences from a file were printed"
    );
    assert_eq!(
        snapshot_all(root).len(),
        before.len(),
        "files appeared or vanished"
    );
}

#[test]
fn garbage_without_a_trail_nearby_is_never_read() {
    // A module none of whose files mention aws_cloudtrail is not parsed (the byte search skips
    // it), so garbage there costs nothing and is not an error.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("junk")).unwrap();
    std::fs::write(tmp.path().join("junk/blob.tf"), garbage(1 << 20, 7)).unwrap();
    let good = write_trail_module(&tmp.path().join("good"), "good");
    let output = apply_in(tmp.path());
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(is_fixed(&good));
}

#[test]

fn labels_declared_in_a_file_that_is_not_utf8_are_not_reused() {
    // Module::load skips a file that is not UTF-8, so the key label it declares looks free
    // and the fix declares `aws_kms_key.main_cloudtrail` a second time: Terraform then rejects
    // the whole module ("Duplicate resource").
    let tmp = tempfile::tempdir().unwrap();
    let trail = write_trail_module(tmp.path(), "main");
    std::fs::write(
        tmp.path().join("keys.tf"),
        b"# cl\xe9s\nresource \"aws_kms_key\" \"main_cloudtrail\" {\n  description = \"x\"\n}\n",
    )
    .unwrap();
    let output = apply_in(tmp.path());
    let fixed = std::fs::read_to_string(&trail).unwrap();
    assert!(
        !fixed.contains("resource \"aws_kms_key\" \"main_cloudtrail\""),
        "a duplicate key label was written:\n{fixed}\n{}",
        stderr_of(&output)
    );
}

// --- size -----------------------------------------------------------------------------------

/// `count` unrelated resources of ~100 bytes, then `tail`.
fn many_blocks(count: usize, tail: &str) -> String {
    let mut text = String::with_capacity(count * 110 + tail.len());
    for i in 0..count {
        text.push_str(&format!(
            "resource \"aws_s3_bucket\" \"b{i}\" {{\n  bucket = \"bucket-{i}\"\n  tags   = {{ Owner = \"team\" }}\n}}\n\n"
        ));
    }
    text.push_str(tail);
    text
}

#[test]
fn fifty_megabyte_file_is_refused_with_a_message_and_the_rest_is_fixed() {
    let tmp = memory_tempdir();
    let big_dir = tmp.path().join("big");
    std::fs::create_dir_all(&big_dir).unwrap();
    let text = many_blocks(50_000_000 / 80, &trail_tf("buried"));
    assert!(text.len() >= 50_000_000);
    std::fs::write(big_dir.join("main.tf"), &text).unwrap();
    let good = write_trail_module(&tmp.path().join("good"), "good");

    let start = Instant::now();
    let output = apply_in(tmp.path());
    let took = start.elapsed();
    assert_no_crash(&output);
    assert_eq!(output.status.code(), Some(2));
    error_line(
        &output,
        "big/main.tf",
        &["MiB", "does not parse Terraform files over", "by hand"],
    );
    assert!(std::fs::read(big_dir.join("main.tf")).unwrap() == text.as_bytes());
    assert!(is_fixed(&good));
    eprintln!("50 MB file: {took:?}");
}

#[test]
fn two_megabyte_file_is_fixed_with_every_other_byte_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let (head, tail) = (many_blocks(10_000, ""), many_blocks(10_000, ""));
    let text = format!("{head}{}\n{tail}", trail_tf("middle"));
    std::fs::write(tmp.path().join("main.tf"), &text).unwrap();

    let start = Instant::now();
    let output = apply_in(tmp.path());
    eprintln!("2 MB file: {:?}", start.elapsed());
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let fixed = std::fs::read_to_string(tmp.path().join("main.tf")).unwrap();
    assert!(fixed.starts_with(&head), "bytes before the trail changed");
    assert!(fixed.ends_with(&tail), "bytes after the trail changed");
    assert!(fixed.len() - text.len() < 4000);
}

#[test]
fn very_long_lines_are_fixed_and_errors_about_them_stay_short() {
    let tmp = tempfile::tempdir().unwrap();
    let long = "x".repeat(1 << 20);
    // A 1 MiB line inside the trail, one in its one-line body, and one before it.
    let inside = tmp.path().join("inside");
    std::fs::create_dir_all(&inside).unwrap();
    let inside_text = format!(
        "locals {{ blob = \"{long}\" }}\nresource \"aws_cloudtrail\" \"t\" {{\n  name = \"t\"\n  tags = {{ blob = \"{long}\" }}\n}}\n"
    );
    std::fs::write(inside.join("main.tf"), &inside_text).unwrap();
    let one_line = tmp.path().join("one-line");
    std::fs::create_dir_all(&one_line).unwrap();
    let one_line_text = format!("resource \"aws_cloudtrail\" \"t\" {{ name = \"{long}\" }}");
    std::fs::write(one_line.join("main.tf"), &one_line_text).unwrap();
    // A syntax error at the end of a 1 MiB line.
    let broken = tmp.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    let broken_text = format!("resource \"aws_cloudtrail\" \"t\" {{\n  name = [\"{long}\" }}\n");
    std::fs::write(broken.join("main.tf"), &broken_text).unwrap();

    let output = apply_in(tmp.path());
    assert_no_crash(&output);
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    let line = error_line(&output, "broken/main.tf:2:", &["cannot parse HCL"]);
    assert!(line.len() < 500, "{} bytes", line.len());
    assert!(
        stderr_of(&output).len() < 5_000,
        "the error quotes the whole line: {} bytes",
        output.stderr.len()
    );
    assert_eq!(
        std::fs::read_to_string(broken.join("main.tf")).unwrap(),
        broken_text
    );
    for (dir, before) in [(&inside, &inside_text), (&one_line, &one_line_text)] {
        let fixed = std::fs::read_to_string(dir.join("main.tf")).unwrap();
        assert!(fixed.contains("kms_key_id"), "{}", dir.display());
        // (A long trail name is also copied into the key's description and policy.)
        assert!(fixed.matches(long.as_str()).count() >= before.matches(long.as_str()).count());
    }
    // The same files in memory: the splice invariants hold.
    for text in [&inside_text, &one_line_text] {
        assert!(invariants::check_invariants(text.as_bytes())
            .fixed
            .is_some());
    }
}

// --- nesting ----------------------------------------------------------------------------------

/// An expression nested `depth` levels deep, in the construct `kind`.
fn nested(kind: &str, depth: usize) -> String {
    match kind {
        "tuple" => format!("{}1{}", "[".repeat(depth), "]".repeat(depth)),
        "object" => format!("{}1{}", "{ a = ".repeat(depth), " }".repeat(depth)),
        "parens" => format!("{}1{}", "(".repeat(depth), ")".repeat(depth)),
        "call" => format!("{}1{}", "max(".repeat(depth), ")".repeat(depth)),
        "for" => format!("{}x{}", "[for x in ".repeat(depth), " : x]".repeat(depth)),
        "template" => format!("{}x{}", "\"${".repeat(depth), "}\"".repeat(depth)),
        "directive" => format!(
            "\"{}x{}\"",
            "%{ if true }".repeat(depth),
            "%{ endif }".repeat(depth)
        ),
        "not" => format!("{}true", "!".repeat(depth)),
        "conditional" => format!("{}1", "true ? 1 : ".repeat(depth)),
        _ => unreachable!(),
    }
}

#[test]
fn deep_nesting_is_fixed_or_refused_but_never_overflows_the_stack() {
    // hcl-edit accepts 64 levels and refuses more. Several modules, so that rayon hands some
    // to its worker threads (2 MiB stacks): a debug build of the parser needs more than that
    // for 64 levels of `[for …]`, and used to abort with a stack overflow.
    let kinds = [
        "tuple",
        "object",
        "parens",
        "call",
        "for",
        "template",
        "directive",
        "not",
        "conditional",
    ];
    let tmp = tempfile::tempdir().unwrap();
    for kind in kinds {
        for depth in [64, 65, 1000] {
            let dir = tmp.path().join(format!("{kind}-{depth}"));
            write_trail_module(&dir, "t");
            let locals = format!("deep = {}\n", nested(kind, depth));
            std::fs::write(dir.join("deep.tf"), locals).unwrap();
        }
    }
    let mut chain = String::from("1");
    for _ in 0..10_000 {
        chain.push_str(" + 1");
    }
    let dir = tmp.path().join("operators");
    write_trail_module(&dir, "t");
    std::fs::write(dir.join("deep.tf"), format!("deep = {chain}\n")).unwrap();

    let output = apply_in(tmp.path());
    assert_no_crash(&output);
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    for kind in kinds {
        let accepted = tmp.path().join(format!("{kind}-64/main.tf"));
        assert!(is_fixed(&accepted), "{kind}: 64 levels are valid HCL");
        assert!(
            std::fs::read_to_string(tmp.path().join(format!("{kind}-64/deep.tf")))
                .unwrap()
                .starts_with("deep = "),
        );
        for depth in [65, 1000] {
            error_line(
                &output,
                &format!("{kind}-{depth}/deep.tf:1:"),
                &["cannot parse HCL", "nest"],
            );
        }
    }
    error_line(&output, "operators/deep.tf:1:", &["cannot parse HCL"]);
}

#[test]
fn input_that_makes_the_parser_run_away_is_given_up_on() {
    // Found by fuzzing: hcl-edit 0.10 backtracks exponentially on unclosed objects mixed with
    // binary operators; 469 bytes took 1 s, these ~300 would take years.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("runaway");
    write_trail_module(&dir, "t");
    let runaway = format!("x = {}", "{k&&k&&".repeat(40));
    std::fs::write(dir.join("runaway.tf"), &runaway).unwrap();
    let good = write_trail_module(&tmp.path().join("good"), "good");

    let start = Instant::now();
    let output = apply_in(tmp.path());
    assert!(start.elapsed().as_secs() < 60, "{:?}", start.elapsed());
    assert_no_crash(&output);
    assert_eq!(output.status.code(), Some(2));
    error_line(
        &output,
        "runaway/runaway.tf",
        &["gave no answer within", "terraform fmt -check"],
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("runaway.tf")).unwrap(),
        runaway
    );
    assert!(is_fixed(&dir.join("main.tf")));
    assert!(is_fixed(&good));
}

// --- heredocs, templates, broken files --------------------------------------------------------

#[test]
fn heredocs_and_template_directives_next_to_the_trail_are_kept() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/regress-heredocs-and-templates-around-trail/input.tf");
    let text = std::fs::read(&fixture).unwrap();
    // Heredocs holding `}`, `kms_key_id` and a trail-like block; templates with `%{}`, `${}`
    // and a `}` inside a string; the trail's last attribute a heredoc.
    let outcome = invariants::check_invariants(&text);
    assert_eq!(outcome.trails.len(), 1, "{:?}", outcome.trails);
    let fixed = outcome.fixed.expect("the trail is fixed");
    for heredoc in [
        "<<-EOT\n    %{ for name",
        "<<EOT\nresource \"aws_cloudtrail\" \"not_a_block\" {\n}\nEOT\n",
    ] {
        assert!(fixed.contains(heredoc));
    }
    assert!(
        fixed.contains("  EOT\n  kms_key_id"),
        "kms_key_id after the heredoc's end:\n{fixed}"
    );
}

#[test]
fn a_trail_in_a_file_that_fails_to_parse_further_down_is_not_touched() {
    let tmp = tempfile::tempdir().unwrap();
    let broken_dir = tmp.path().join("broken");
    std::fs::create_dir_all(&broken_dir).unwrap();
    let broken = format!(
        "{}\n{}\nresource \"aws_s3_bucket\" \"b\" {{\n  bucket = \n}}\n",
        trail_tf("first"),
        many_blocks(200, "")
    );
    std::fs::write(broken_dir.join("main.tf"), &broken).unwrap();
    // Its module's other file, and another module, are fixed.
    let sibling = broken_dir.join("other.tf");
    std::fs::write(&sibling, trail_tf("second")).unwrap();
    let good = write_trail_module(&tmp.path().join("good"), "good");

    let output = apply_in(tmp.path());
    assert_no_crash(&output);
    assert_eq!(output.status.code(), Some(2));
    let line = broken.lines().count() - 1; // `  bucket = `
    error_line(
        &output,
        &format!("broken/main.tf:{line}:"),
        &["cannot parse HCL", "leaves this file untouched"],
    );
    assert_eq!(
        std::fs::read_to_string(broken_dir.join("main.tf")).unwrap(),
        broken
    );
    assert!(is_fixed(&sibling));
    assert!(is_fixed(&good));
    // The generated key of `second` does not reuse a label declared in the broken file.
    let (_, json) = check_json(tmp.path());
    assert!(json["errors"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["line"] == line));
}

// --- links ------------------------------------------------------------------------------------

#[test]
fn a_symlinked_tf_file_is_read_but_never_written_through() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("shared.tf");
    std::fs::write(&target, trail_tf("shared")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let linked_dir = tmp.path().join("linked");
    std::fs::create_dir_all(&linked_dir).unwrap();
    std::os::unix::fs::symlink(&target, linked_dir.join("shared.tf")).unwrap();
    let good = write_trail_module(&tmp.path().join("good"), "good");

    let (code, json) = check_json(tmp.path());
    assert_eq!(
        code,
        Some(1),
        "the trail behind the link is checked: {json}"
    );
    assert!(json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["resource"] == "aws_cloudtrail.shared"));

    let output = apply_in(tmp.path());
    assert_eq!(output.status.code(), Some(2));
    let line = error_line(
        &output,
        "linked/shared.tf",
        &["is a symbolic link", "never writes through links"],
    );
    assert!(line.contains(&target.display().to_string()), "{line}");
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        trail_tf("shared")
    );
    assert!(std::fs::symlink_metadata(linked_dir.join("shared.tf"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(is_fixed(&good));
}

#[test]
fn symlink_loops_neither_hang_nor_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let looped = root.join("looped");
    std::fs::create_dir_all(&looped).unwrap();
    std::os::unix::fs::symlink("b.tf", looped.join("a.tf")).unwrap();
    std::os::unix::fs::symlink("a.tf", looped.join("b.tf")).unwrap();
    std::os::unix::fs::symlink(".", looped.join("self")).unwrap();
    std::os::unix::fs::symlink("..", looped.join("parent")).unwrap();
    std::os::unix::fs::symlink("missing.tf", looped.join("dangling.tf")).unwrap();
    let beside = looped.join("main.tf");
    std::fs::write(&beside, trail_tf("beside")).unwrap();
    let good = write_trail_module(&root.join("good"), "good");

    let (tx, rx) = std::sync::mpsc::channel();
    let root_path = root.to_path_buf();
    std::thread::spawn(move || tx.send(apply_in(&root_path)).unwrap());
    let output = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("ctfix hangs on a symlink loop");
    assert_no_crash(&output);
    assert!(is_fixed(&beside));
    assert!(is_fixed(&good));
    for link in ["a.tf", "b.tf", "self", "parent", "dangling.tf"] {
        assert!(std::fs::symlink_metadata(looped.join(link))
            .unwrap()
            .file_type()
            .is_symlink());
    }
}

#[test]

fn a_tf_link_that_cannot_be_followed_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("b.tf", tmp.path().join("a.tf")).unwrap();
    std::os::unix::fs::symlink("a.tf", tmp.path().join("b.tf")).unwrap();
    std::os::unix::fs::symlink("missing.tf", tmp.path().join("dangling.tf")).unwrap();
    write_trail_module(tmp.path(), "t");
    let output = apply_in(tmp.path());
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    for link in ["a.tf", "b.tf", "dangling.tf"] {
        error_line(&output, link, &["symbolic link"]);
    }
}

// --- many files -------------------------------------------------------------------------------

#[test]
fn a_hundred_thousand_files() {
    let tmp = memory_tempdir();
    let root = tmp.path();
    let start = Instant::now();
    let mut trails: Vec<PathBuf> = Vec::new();
    for d in 0..1000 {
        let dir = root.join(format!("m{d:04}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..100 {
            let path = dir.join(format!("f{f:02}.tf"));
            if f == 0 && d % 100 == 0 {
                std::fs::write(&path, trail_tf(&format!("t{d}"))).unwrap();
                trails.push(path);
            } else {
                std::fs::write(
                    &path,
                    format!("variable \"v{f}\" {{\n  default = {d}\n}}\n"),
                )
                .unwrap();
            }
        }
    }
    let generated = start.elapsed();
    let start = Instant::now();
    let output = ctfix()
        .current_dir(root)
        .args(["--apply", "--yes", "--format", "json", "."])
        .output()
        .unwrap();
    let took = start.elapsed();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["summary"]["files_scanned"], 100_000);
    assert_eq!(json["summary"]["files_written"], trails.len());
    assert!(trails.iter().all(|path| is_fixed(path)));
    eprintln!("100,000 files: generated in {generated:?}, checked and fixed in {took:?}");
}
