//! The line-level minimality check shared by the fixture, real-tree and invariant tests (and
//! the fuzz targets, which include `invariants.rs`, which includes this file).

/// Checks that `after` keeps every line of `before`, in order, except what a fix may change:
/// the value of a `kms_key_id` line (the text up to its `=` stays), a line holding a body's
/// braces opened up (`{ name = "x" }` → one item per line: the same non-blank text, in the
/// same order, with only the inserted `kms_key_id` or `policy` attribute added), and a last
/// line without a newline that reappears with one. Added lines are not judged here.
pub fn check_lines_kept(before: &str, after: &str) -> Result<(), String> {
    let after_lines: Vec<&str> = after.split_inclusive('\n').collect();
    let mut at = 0;
    for line in before.split_inclusive('\n') {
        let unterminated = !line.ends_with('\n');
        let same = |candidate: &str| {
            candidate == line || (unterminated && candidate.trim_end_matches(['\n', '\r']) == line)
        };
        // The earliest place the line reappears, kept or changed as allowed.
        let kept = after_lines[at..]
            .iter()
            .position(|a| same(a))
            .map(|i| (at + i, at + i + 1));
        let replaced = kms_value_replaced(line, &after_lines[at..]).map(|i| (at + i, at + i + 1));
        let opened = braces_opened(line, &after_lines, at);
        if let Some((_, end)) = [kept, replaced, opened].into_iter().flatten().min() {
            at = end;
            continue;
        }
        return Err(format!("an existing line changed or went: {line:?}"));
    }
    Ok(())
}

/// Where in `after` the line holding a `kms_key_id` assignment reappears with only its value
/// replaced: the first line that keeps everything up to and including the `=`, and the
/// closing braces after the value (a one-line body: `{ kms_key_id = null }`).
fn kms_value_replaced(line: &str, after: &[&str]) -> Option<usize> {
    let at = line.find("kms_key_id")?;
    let rest = &line[at + "kms_key_id".len()..];
    let eq = rest.len() - rest.trim_start().len();
    if !rest[eq..].starts_with('=') {
        return None;
    }
    let prefix = &line[..at + "kms_key_id".len() + eq + 1];
    let tail_len = line
        .chars()
        .rev()
        .take_while(|c| c.is_whitespace() || *c == '}')
        .map(char::len_utf8)
        .sum::<usize>();
    let tail = &line[line.len() - tail_len..];
    // A last line without a newline may get one.
    let unterminated = !line.ends_with('\n');
    after.iter().position(|a| {
        let a = if unterminated {
            a.trim_end_matches(['\n', '\r'])
        } else {
            a
        };
        a.starts_with(prefix) && a.ends_with(tail)
    })
}

/// The attributes a fix inserts into an existing body: a trail's key, a key's policy.
const INSERTED: [&str; 2] = ["kms_key_id ", "policy "];

/// Opening minus closing brackets on a line (a policy's `${…}` templates are balanced).
fn bracket_depth(line: &str) -> i64 {
    line.chars()
        .map(|c| match c {
            '{' | '[' | '(' => 1,
            '}' | ']' | ')' => -1,
            _ => 0,
        })
        .sum()
}

/// Where a line with a brace and other text (a one-line body, a body that starts on the `{`
/// line, a `}` after a value) reappears opened up over several lines of `after` from `from`:
/// consecutive lines that, with the one inserted attribute (`kms_key_id`, or a key's `policy`
/// with all its lines) left out, hold the same non-blank text. Returns the first line used and
/// the one after the last.
fn braces_opened(line: &str, after: &[&str], from: usize) -> Option<(usize, usize)> {
    let squeeze = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    let want = squeeze(line);
    if !(want.contains('{') || want.contains('}')) || want == "{" || want == "}" {
        return None;
    }
    for start in from..after.len() {
        let mut got = String::new();
        let mut inserted = 0;
        // The inserted attribute's lines: bracket depth still open after its first line.
        let mut depth = 0i64;
        for (i, candidate) in after.iter().enumerate().skip(start) {
            if depth > 0 {
                depth += bracket_depth(candidate);
                continue;
            }
            let trimmed = candidate.trim_start();
            if i > start && inserted == 0 && INSERTED.iter().any(|a| trimmed.starts_with(a)) {
                inserted += 1;
                depth = bracket_depth(candidate);
                continue;
            }
            got.push_str(&squeeze(candidate));
            if got == want && i > start {
                return Some((start, i + 1));
            }
            if !want.starts_with(&got) {
                break;
            }
        }
    }
    None
}
