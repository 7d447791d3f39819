//! The invariants every fix must keep, checked on one file through the library entry point
//! the binary runs for each module, [`ctfix::check_module`] (safe fixes planned first, the
//! fixed module re-verified before any change is returned). Shared by the property tests
//! (`tests/properties.rs`), `tests/adversarial.rs` and the fuzz targets
//! (`fuzz/fuzz_targets/*.rs` include this file by path), so all hold ctfix to the same
//! contract, for the safe fixes and for those `--unsafe-fixes` adds:
//!
//! - nothing panics;
//! - every line of the file is kept, in order, except a replaced `kms_key_id` value and a
//!   trail body opened up from one line, which must hold the same text plus the one
//!   `kms_key_id` line (`lines.rs`); inserted text follows the file's line endings;
//! - trails that are compliant or suppressed get no fix, and every top-level block other than
//!   a fixed trail or a key (`aws_kms_key`, `aws_kms_key_policy`, `aws_iam_policy_document`)
//!   is kept byte for byte;
//! - the fixed text parses, every fixed trail is then compliant, and a second run finds
//!   nothing to write.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ctfix::discover::ModuleDir;
use ctfix::parse::SourceFile;
use ctfix::{Applicability, Report, Settings, Status};
use hcl_edit::Span;

#[path = "lines.rs"]
#[allow(clippy::duplicate_mod)] // also a module of `support` in the tests that use both
mod lines;

/// What one run over a file did (with `--unsafe-fixes`: the most ctfix writes).
#[derive(Debug, Default)]
pub struct Outcome {
    /// The file was valid UTF-8 and parsed.
    pub parsed: bool,
    /// `(address, status)` of every trail, in file order.
    pub trails: Vec<(String, Status)>,
    /// The fixed text, when there was anything to write.
    pub fixed: Option<String>,
}

/// Blocks whose content a fix may change: keys and their policies.
const KEY_BLOCKS: [(&str, &str); 3] = [
    ("resource", "aws_kms_key"),
    ("resource", "aws_kms_key_policy"),
    ("data", "aws_iam_policy_document"),
];

/// A directory of its own (in memory when `/dev/shm` exists), removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!(
            "ctfix-invariants-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs [`ctfix::check_module`] on `bytes` as the module's only file, `main.tf`.
fn check_file(bytes: &[u8], min_applicability: Applicability) -> Report {
    let scratch = Scratch::new();
    let path = scratch.0.join("main.tf");
    std::fs::write(&path, bytes).unwrap();
    let dir = ModuleDir {
        dir: scratch.0.clone(),
        files: vec![path.clone()],
        json_files: Vec::new(),
        targets: [path].into_iter().collect(),
        dot_terraform: None,
    };
    let settings = Settings {
        paths: vec![scratch.0.clone()],
        min_applicability,
        ..Settings::default()
    };
    ctfix::check_module(&dir, &settings)
}

/// Runs the pipeline on `bytes`, with safe fixes only and with unsafe ones too, and panics,
/// with the input in the message, when an invariant breaks. The outcome is the unsafe run's.
pub fn check_invariants(bytes: &[u8]) -> Outcome {
    let Ok(source) = SourceFile::from_bytes("main.tf", bytes.to_vec()) else {
        return Outcome::default();
    };
    let text = source.text.clone();
    let parsed = ctfix::parse::parse_source(&source).is_ok();
    check_run(bytes, &text, Applicability::Safe);
    let (trails, fixed) = check_run(bytes, &text, Applicability::Unsafe);
    Outcome {
        parsed,
        trails,
        fixed,
    }
}

/// One run of the invariants; returns the trails and the fixed text.
fn check_run(
    bytes: &[u8],
    text: &str,
    min_applicability: Applicability,
) -> (Vec<(String, Status)>, Option<String>) {
    let report = check_file(bytes, min_applicability);
    let trails: Vec<(String, Status)> = report
        .findings
        .iter()
        .map(|f| (f.resource.clone(), f.status))
        .collect();
    let mut fixed_addresses = BTreeSet::new();
    for finding in &report.findings {
        let selected = finding.fix.as_ref().is_some_and(|f| f.selected);
        if matches!(finding.status, Status::Compliant | Status::Suppressed) {
            assert!(
                finding.fix.is_none(),
                "{}: a {:?} trail gets a fix\n{text:?}",
                finding.resource,
                finding.status
            );
        }
        if selected {
            fixed_addresses.insert(finding.resource.clone());
        }
    }
    assert!(
        report.changes.len() <= 1,
        "changes to files that do not exist: {:?}",
        report.changes.iter().map(|c| &c.path).collect::<Vec<_>>()
    );
    let Some(change) = report.changes.first() else {
        return (trails, None);
    };
    assert_eq!(
        change.before, bytes,
        "the change does not start from the file"
    );
    let after = SourceFile::from_bytes("main.tf", change.after.clone())
        .expect("the fixed file is text")
        .text;
    let fixed = after.clone();
    let context = || format!("--- input\n{text}\n--- fixed\n{fixed}");

    if let Err(error) = lines::check_lines_kept(text, &after) {
        panic!("{error}\n{}", context());
    }
    let lone_lf = |s: &str| {
        s.match_indices('\n')
            .filter(|(i, _)| !s[..*i].ends_with('\r'))
            .count()
    };
    if text.contains("\r\n") && lone_lf(text) == 0 {
        assert_eq!(
            lone_lf(&after),
            0,
            "an LF-only line inserted into a CRLF file\n{}",
            context()
        );
    }
    // Every top-level block but a fixed trail and a key is kept byte for byte.
    if let Ok(body) = hcl_edit::parser::parse_body(text) {
        for block in body.blocks() {
            let Some(span) = block.span() else { continue };
            let first = block.labels.first().map(|l| l.as_str());
            let key = KEY_BLOCKS
                .iter()
                .any(|(ident, kind)| block.ident.as_str() == *ident && first == Some(*kind));
            let fixed_trail = block.ident.as_str() == "resource"
                && first == Some("aws_cloudtrail")
                && block.labels.get(1).is_some_and(|l| {
                    fixed_addresses.contains(&format!("aws_cloudtrail.{}", l.as_str()))
                });
            if !key && !fixed_trail {
                assert!(
                    after.contains(&text[span.clone()]),
                    "a block a fix must not touch changed: {:?}\n{}",
                    &text[span],
                    context()
                );
            }
        }
    }

    // The fixed file: parses, every fixed trail is compliant, nothing more to write.
    let reparsed = SourceFile::from_bytes("main.tf", change.after.clone())
        .and_then(|source| ctfix::parse::parse_source(&source));
    if let Err(error) = reparsed {
        panic!("the fixed text does not parse: {error}\n{}", context());
    }
    let again = check_file(&change.after, min_applicability);
    for finding in &again.findings {
        if fixed_addresses.contains(&finding.resource) {
            assert_eq!(
                finding.status,
                Status::Compliant,
                "{} is not compliant after its fix ({:?}: {})\n{}",
                finding.resource,
                finding.reason,
                finding.message,
                context()
            );
        }
    }
    assert!(
        again.changes.is_empty(),
        "a second run still writes: {:?}\n{}",
        again
            .findings
            .iter()
            .filter(|f| f.fix.as_ref().is_some_and(|f| f.selected))
            .map(|f| &f.resource)
            .collect::<Vec<_>>(),
        context()
    );
    (trails, Some(fixed))
}
