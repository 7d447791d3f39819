//! The outline (the top-level blocks found by a byte scan, `ctfix::read::outline`) must agree
//! with hcl-edit's parse wherever it answers: ctfix lists what a module declares from it and
//! parses only the blocks it reads.
//!
//! Checked on every `.tf` file of the fixtures and of the generated benchmark tree, on cuts
//! and insertions of the characters that change a scan's state at thirteen places of each
//! fixture file, and, when `CTFIX_OUTLINE_CORPUS` names directories (separated by `:`),
//! on the Terraform files under them.

use std::path::{Path, PathBuf};

use ctfix::read::outline::{headers_of, outline, Header};
use proptest::prelude::*;

#[allow(dead_code)] // the generator's command-line half is not used here
#[path = "../examples/gen_monorepo.rs"]
mod gen_monorepo;

/// hcl-edit's top-level blocks of `text`, or `None` when it does not parse or holds
/// anything but blocks.
fn parsed(text: &str) -> Option<Vec<Header>> {
    headers_of(&hcl_edit::parser::parse_body(text).ok()?)
}

/// Whether the outline agrees with the parse: it may decline (`None`), and a text that does
/// not parse may be outlined (its blocks are parsed, and refused, when read).
fn check(text: &str, what: &str) -> Result<bool, String> {
    let Some(headers) = outline(text) else {
        return Ok(false);
    };
    match hcl_edit::parser::parse_body(text) {
        Err(_) => Ok(true),
        Ok(_) => match parsed(text) {
            Some(blocks) if blocks == headers => Ok(true),
            other => Err(format!(
                "{what}: the outline differs from the parse\noutline: {headers:?}\nparse:   {other:?}"
            )),
        },
    }
}

fn tf_files(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .filter(|p| p.extension().is_some_and(|x| x == "tf"))
        .collect()
}

fn fixture_texts() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    tf_files(&root)
        .into_iter()
        .filter_map(|p| {
            let text = std::fs::read_to_string(&p).ok()?;
            Some((p, text.strip_prefix('\u{feff}').unwrap_or(&text).to_owned()))
        })
        .collect()
}

/// Checks every file and returns (outlined, declined).
fn check_all(texts: &[(PathBuf, String)]) -> (usize, usize) {
    let mut failures = Vec::new();
    let (mut outlined, mut declined) = (0, 0);
    for (path, text) in texts {
        match check(text, &path.display().to_string()) {
            Ok(true) => outlined += 1,
            Ok(false) => declined += 1,
            Err(failure) => failures.push(failure),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    (outlined, declined)
}

#[test]
fn the_outline_agrees_with_the_parser_on_every_fixture() {
    let texts = fixture_texts();
    assert!(texts.len() > 100, "the fixtures were found");
    let (outlined, declined) = check_all(&texts);
    eprintln!("fixtures: {outlined} outlined, {declined} left to the parser");
    // Most plain files are outlined (or the speed-up would be lost without a test noticing).
    assert!(outlined * 2 > texts.len(), "{outlined} of {}", texts.len());
}

#[test]
fn the_outline_agrees_with_the_parser_on_a_generated_tree() {
    let out = tempfile::tempdir().unwrap();
    let mut options = gen_monorepo::Options::new(out.path(), 300);
    options.force = true;
    gen_monorepo::generate(&options).unwrap();
    let texts: Vec<(PathBuf, String)> = tf_files(out.path())
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect();
    let (outlined, declined) = check_all(&texts);
    eprintln!("generated tree: {outlined} outlined, {declined} left to the parser");
    assert_eq!(declined, 0, "the generated files are all plain");
}

#[test]
fn the_outline_agrees_with_the_parser_on_cut_and_broken_fixtures() {
    let mut failures = Vec::new();
    for (path, text) in fixture_texts() {
        let what = path.display().to_string();
        // Twelve places per file, spread evenly (every place of every file takes minutes in
        // a debug build).
        let cuts: std::collections::BTreeSet<usize> = (0..=12)
            .map(|k| k * text.len() / 12)
            .map(|mut at| {
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                at
            })
            .collect();
        for &at in &cuts {
            if let Err(f) = check(&text[..at], &format!("{what} cut at {at}")) {
                failures.push(f);
            }
            for inserted in ["\"", "{", "}", "#", "${", "%{", "/*", "\n", "\\", "<<"] {
                let mut broken = text.clone();
                broken.insert_str(at, inserted);
                if let Err(f) = check(&broken, &format!("{what} with {inserted:?} at {at}")) {
                    failures.push(f);
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} disagreements, first:\n{}",
        failures.len(),
        failures
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}

#[test]
fn the_outline_agrees_with_the_parser_on_a_corpus() {
    let Some(dirs) = std::env::var_os("CTFIX_OUTLINE_CORPUS") else {
        eprintln!("CTFIX_OUTLINE_CORPUS not set: only the fixtures are checked");
        return;
    };
    let texts: Vec<(PathBuf, String)> = std::env::split_paths(&dirs)
        .flat_map(|dir| tf_files(&dir))
        .filter_map(|p| {
            let text = std::fs::read_to_string(&p).ok()?;
            Some((p, text.strip_prefix('\u{feff}').unwrap_or(&text).to_owned()))
        })
        .collect();
    let (outlined, declined) = check_all(&texts);
    eprintln!("corpus: {outlined} outlined, {declined} left to the parser");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Texts made of the pieces that change a scan's state agree too.
    #[test]
    fn the_outline_agrees_with_the_parser_on_pieces(
        pieces in prop::collection::vec(prop::sample::select(vec![
            "resource \"a\" \"b\" {", "data x y {", "locals {", "}", "{", "\n", " ", "\"", "\\\"",
            "${", "%{", "$${", "%%{", "#", "//", "/*", "*/", "a = ", "1", "x", "[", "]", "<<EOF\n",
            "EOF\n", "\r\n", "\t", "é",
        ]), 0..24)
    ) {
        let text: String = pieces.concat();
        prop_assert!(check(&text, "pieces").is_ok(), "{}", check(&text, &format!("{text:?}")).unwrap_err());
    }
}
