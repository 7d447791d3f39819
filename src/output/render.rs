//! Stage 5: unified diffs of planned changes, in the form `git apply` accepts.

use std::path::Path;

use similar::TextDiff;

/// A unified diff of one file with `a/` and `b/` headers (paths with `/` separators), or an
/// empty string when nothing changed. Bytes that are not UTF-8 never reach here: such files
/// are refused before any fix is planned.
pub fn render_diff(path: &Path, before: &[u8], after: &[u8]) -> String {
    if before == after {
        return String::new();
    }
    let before = String::from_utf8_lossy(before);
    let after = String::from_utf8_lossy(after);
    let name = display_path(path);
    // As git does: a tab ends a name holding a space, so that `patch` reads all of it.
    let end = if name.contains(' ') { "\t" } else { "" };
    TextDiff::from_lines(before.as_ref(), after.as_ref())
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{name}{end}"), &format!("b/{name}{end}"))
        .to_string()
}

/// A path as shown in diffs and reports: `/` separators, no leading `./`.
pub fn display_path(path: &Path) -> String {
    let text = path.to_string_lossy().replace('\\', "/");
    text.strip_prefix("./").map(str::to_owned).unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_hunks() {
        let diff = render_diff(Path::new("./m/main.tf"), b"a\nb\n", b"a\nc\nb\n");
        assert!(diff.starts_with("--- a/m/main.tf\n+++ b/m/main.tf\n@@ -1,2 +1,3 @@\n"));
        assert!(diff.contains("\n+c\n"));
    }

    #[test]
    fn names_with_spaces_end_with_a_tab() {
        let diff = render_diff(Path::new("my mod/main.tf"), b"a\n", b"b\n");
        assert!(diff.starts_with("--- a/my mod/main.tf\t\n+++ b/my mod/main.tf\t\n"));
    }

    #[test]
    fn missing_final_newline_is_marked() {
        let diff = render_diff(Path::new("x.tf"), b"a", b"a\nb");
        assert!(diff.contains("\\ No newline at end of file"));
    }

    #[test]
    fn no_change_no_diff() {
        assert!(render_diff(Path::new("x.tf"), b"a\n", b"a\n").is_empty());
    }
}
