//! The line-level minimality check shared by the fixture, real-tree and invariant tests (and
//! the fuzz targets, which include `invariants.rs`, which includes this file).

/// Checks that `after` keeps every line of `before`, in order, except what a fix may change:
/// the value of a `kms_key_id` line (the text up to its `=` stays), a line holding a trail's
/// body braces opened up (`{ name = "x" }` → one item per line: the same non-blank text, in
/// the same order, with only the inserted `kms_key_id` line added), and a last line without a
/// newline that reappears with one. Added lines are not judged here.
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

/// Where a line with a brace and other text (a one-line trail body, a body that starts on the
/// `{` line, a `}` after a value) reappears opened up over several lines of `after` from
/// `from`: consecutive lines that, with the one inserted `kms_key_id` line left out, hold the
/// same non-blank text. Returns the first line used and the one after the last.
fn braces_opened(line: &str, after: &[&str], from: usize) -> Option<(usize, usize)> {
    let squeeze = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    let want = squeeze(line);
    if !(want.contains('{') || want.contains('}')) || want == "{" || want == "}" {
        return None;
    }
    for start in from..after.len() {
        let mut got = String::new();
        let mut inserted = 0;
        for (i, candidate) in after.iter().enumerate().skip(start) {
            if i > start && candidate.trim_start().starts_with("kms_key_id") && inserted == 0 {
                inserted += 1;
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
