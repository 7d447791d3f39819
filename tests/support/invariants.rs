//! The invariants every fix must keep, checked on one in-memory file through the library's
//! stages (parse → module → analyze → fix), without touching the disk. Shared by the property
//! tests (`tests/properties.rs`) and the fuzz targets (`fuzz/fuzz_targets/*.rs` include this
//! file by path), so both hold ctfix to the same contract:
//!
//! - nothing panics;
//! - the edits of every fix that can be written (safe, or unsafe with `--unsafe-fixes`) apply
//!   together, and every byte outside them is kept, in order;
//! - edits stay where a fix may write: inside the trail it fixes (replacing only its
//!   `kms_key_id` value or opening a one-line body), inside a key or key-policy block, or, for
//!   new blocks, between top-level blocks. Trails that are compliant or suppressed, and every
//!   other block, are not touched at all;
//! - the fixed text parses, every fixed trail is then compliant, and a second run plans no fix
//!   to write.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::Path;

use ctfix::analyze;
use ctfix::fix::{self, FixPlanner};
use ctfix::module::Module;
use ctfix::parse::SourceFile;
use ctfix::{Applicability, Edit, Status};
use hcl_edit::Span;

/// What one run over a file did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The file was valid UTF-8 and parsed.
    pub parsed: bool,
    /// `(address, status)` of every trail, in file order.
    pub trails: Vec<(String, Status)>,
    /// The edits of the fixes that can be written.
    pub edits: Vec<Edit>,
    /// The fixed text, when there was anything to fix.
    pub fixed: Option<String>,
}

/// Blocks whose content a fix may change: keys and their policies.
const KEY_BLOCKS: [(&str, &str); 3] = [
    ("resource", "aws_kms_key"),
    ("resource", "aws_kms_key_policy"),
    ("data", "aws_iam_policy_document"),
];

/// Runs the pipeline on `bytes` as the only file of a module and panics, with the input in
/// the message, when an invariant breaks.
pub fn check_invariants(bytes: &[u8]) -> Outcome {
    let Ok(source) = SourceFile::from_bytes("main.tf", bytes.to_vec()) else {
        return Outcome::default();
    };
    let text = source.text.clone();
    let module = Module::from_sources(Path::new("."), vec![source]);
    let Some(body) = module.files[0].body.as_ref() else {
        assert!(
            analyze::find_trails(&module).is_empty(),
            "an unparsed file has no trails"
        );
        return Outcome::default();
    };
    if known_issue(&module) {
        return Outcome::default();
    }
    let mut outcome = Outcome {
        parsed: true,
        ..Outcome::default()
    };
    // Top-level blocks: (span, may a fix edit inside it).
    let blocks: Vec<(Range<usize>, bool)> = body
        .blocks()
        .filter_map(|block| {
            let span = block.span()?;
            let first = block.labels.first().map(|l| l.as_str());
            let editable = KEY_BLOCKS
                .iter()
                .any(|(ident, kind)| block.ident.as_str() == *ident && first == Some(*kind));
            Some((span, editable))
        })
        .collect();

    let trails = analyze::find_trails(&module);
    let mut verdicts = analyze::judge_all(&module, &trails);
    skip_duplicates(&trails, &mut verdicts);
    let mut planner = FixPlanner::new(&module);
    // Trails that must not change, and the fixed ones with the ranges a fix may replace.
    let mut frozen: Vec<(String, Range<usize>)> = Vec::new();
    let mut fixed_trails: Vec<FixedTrail> = Vec::new();
    let mut failed_plans = BTreeSet::new();
    for (trail, verdict) in trails.iter().zip(verdicts) {
        outcome.trails.push((trail.address.clone(), verdict.status));
        let block = module.block(trail.at);
        let span = block.span().expect("a parsed block has a span");
        let plan = planner.plan(trail, &verdict.remedy);
        match verdict.status {
            Status::Compliant | Status::Suppressed => {
                frozen.push((trail.address.clone(), span.clone()));
            }
            Status::Noncompliant | Status::Unknown => {}
        }
        if verdict.status == Status::Suppressed {
            assert!(
                plan.is_none(),
                "{}: a suppressed trail gets a fix",
                trail.address
            );
        }
        match plan {
            None => {}
            Some(Err(_)) => {
                failed_plans.insert(trail.address.clone());
            }
            Some(Ok(planned)) => {
                if planned.applicability == Applicability::DisplayOnly || planned.edits.is_empty() {
                    continue;
                }
                let value = block
                    .body
                    .get_attribute("kms_key_id")
                    .and_then(|attr| attr.value.span());
                // The body's `{` is the first one after the last label (a quoted label may
                // hold braces itself).
                let labels_end = block
                    .labels
                    .last()
                    .and_then(|label| label.span())
                    .map_or(span.start, |r| r.end);
                let open = text[labels_end..span.end].find('{').map(|i| labels_end + i);
                fixed_trails.push(FixedTrail {
                    address: trail.address.clone(),
                    span,
                    kms_value: value,
                    open,
                });
                outcome.edits.extend(planned.edits);
            }
        }
    }
    if outcome.edits.is_empty() {
        return outcome;
    }

    let edit_refs: Vec<&Edit> = outcome.edits.iter().collect();
    let fixed = fix::apply_edits(&text, &edit_refs)
        .unwrap_or_else(|error| panic!("planned edits do not apply: {error}\n{text:?}"));
    assert_splice(&text, &fixed, &outcome.edits);
    for edit in &outcome.edits {
        assert_eq!(
            edit.path,
            Path::new("main.tf"),
            "an edit names another file"
        );
        for (address, span) in &frozen {
            assert!(
                !touches(&edit.range, span),
                "an edit at {:?} touches {address}, which must stay unchanged\n{text:?}",
                edit.range
            );
        }
        let in_fixed_trail = fixed_trails
            .iter()
            .find(|trail| touches(&edit.range, &trail.span));
        let in_block = blocks.iter().find(|(span, _)| touches(&edit.range, span));
        let replaced = &text[edit.range.clone()];
        let allowed = match (in_fixed_trail, in_block) {
            (Some(trail), _) => {
                edit.range.is_empty()
                    // Only whitespace goes (before a `}` that moves to its own line).
                    || replaced.trim().is_empty()
                    // The `kms_key_id` value, or part of it (`.key_id` → `.arn`).
                    || trail.kms_value.as_ref().is_some_and(|value| {
                        value.start <= edit.range.start && edit.range.end <= value.end
                    })
                    // A one-line body opened up.
                    || (trail.open == Some(edit.range.start)
                        && edit.range.end == trail.span.end
                        && !replaced.contains('\n'))
                    // A body that starts on the `{` line, opened up: what followed `{` is
                    // re-emitted as it was, on a line of its own.
                    || (trail.open == Some(edit.range.start)
                        && edit.text.contains(replaced[1..].trim()))
            }
            (None, Some((_, editable))) => *editable,
            (None, None) => edit.range.is_empty(),
        };
        assert!(
            allowed,
            "an edit at {:?} (replacing {:?}) is outside what a fix may change\n{text:?}",
            edit.range, replaced
        );
    }

    let again = Module::from_sources(
        Path::new("."),
        vec![SourceFile::from_bytes("main.tf", fixed.clone().into_bytes()).unwrap()],
    );
    if let Some(error) = again.errors.first() {
        panic!("the fixed text does not parse: {error}\n--- input\n{text}\n--- fixed\n{fixed}");
    }
    let fixed_addresses: BTreeSet<&str> = fixed_trails.iter().map(|t| t.address.as_str()).collect();
    let trails = analyze::find_trails(&again);
    let mut verdicts = analyze::judge_all(&again, &trails);
    skip_duplicates(&trails, &mut verdicts);
    let mut planner = FixPlanner::new(&again);
    for (trail, verdict) in trails.iter().zip(verdicts) {
        if fixed_addresses.contains(trail.address.as_str()) {
            assert_eq!(
                verdict.status,
                Status::Compliant,
                "{} is not compliant after its fix ({}: {})\n--- input\n{text}\n--- fixed\n{fixed}",
                trail.address,
                verdict.reason,
                verdict.message
            );
        }
        if let Some(Ok(planned)) = planner.plan(trail, &verdict.remedy) {
            let writable =
                planned.applicability > Applicability::DisplayOnly && !planned.edits.is_empty();
            assert!(
                !writable || failed_plans.contains(&trail.address),
                "a second run still fixes {}: {}\n--- input\n{text}\n--- fixed\n{fixed}",
                trail.address,
                planned.title
            );
        }
    }
    outcome.fixed = Some(fixed);
    outcome
}

/// As `check_module` does: an address declared twice is an error, and neither copy is fixed.
fn skip_duplicates(trails: &[analyze::Trail], verdicts: &mut [analyze::Verdict]) {
    for (trail, verdict) in trails.iter().zip(verdicts.iter_mut()) {
        if trails.iter().filter(|t| t.address == trail.address).count() > 1 {
            verdict.remedy = analyze::Remedy::None;
        }
    }
}

/// Inputs that hit a bug already reported and covered by a `fixtures/regress-*` case, skipped
/// so that fuzzing keeps looking for new ones; delete a clause when its fix lands. (Empty:
/// every bug fuzzing found so far has a fix — see the `fixtures/regress-*` cases.)
fn known_issue(module: &Module) -> bool {
    let _ = module;
    false
}

struct FixedTrail {
    address: String,
    span: Range<usize>,
    kms_value: Option<Range<usize>>,
    open: Option<usize>,
}

/// Whether an edit at `edit` changes or inserts text strictly inside `span` (an insertion
/// right after a block's closing brace is outside it).
fn touches(edit: &Range<usize>, span: &Range<usize>) -> bool {
    if edit.is_empty() {
        edit.start > span.start && edit.start < span.end
    } else {
        edit.start < span.end && span.start < edit.end
    }
}

/// Checks, without `apply_edits`, that `after` is `before` with exactly the edits made: every
/// byte between edits is kept, in order, and each edit's text sits where its range was.
pub fn assert_splice(before: &str, after: &str, edits: &[Edit]) {
    let mut sorted: Vec<&Edit> = edits.iter().collect();
    sorted.sort_by_key(|e| (e.range.start, e.range.end));
    let (mut cursor, mut out) = (0usize, 0usize);
    for edit in sorted {
        assert!(edit.range.start >= cursor, "edits overlap");
        let kept = &before.as_bytes()[cursor..edit.range.start];
        assert_eq!(
            after.as_bytes().get(out..out + kept.len()),
            Some(kept),
            "bytes {cursor}..{} of the input changed",
            edit.range.start
        );
        out += kept.len();
        let inserted = edit.text.as_bytes();
        assert_eq!(
            after.as_bytes().get(out..out + inserted.len()),
            Some(inserted),
            "the edit at {:?} is not where it belongs",
            edit.range
        );
        out += inserted.len();
        cursor = edit.range.end;
    }
    assert_eq!(
        &after.as_bytes()[out..],
        &before.as_bytes()[cursor..],
        "the input's tail changed"
    );
}
