//! Stage 2: read a file and parse it with hcl-edit, keeping the exact bytes so that fixes can
//! be spliced into the original text.

use std::path::{Path, PathBuf};

use hcl_edit::structure::Body;

use crate::model::FileError;

/// The UTF-8 byte order mark. hcl-edit rejects it, so it is stripped before parsing and put
/// back when writing.
pub const BOM: &str = "\u{feff}";

/// A file's text as read from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// The exact bytes read.
    pub bytes: Vec<u8>,
    /// Whether the file starts with a UTF-8 byte order mark.
    pub bom: bool,
    /// The text after the BOM. Every byte offset ctfix computes is an offset into this.
    pub text: String,
}

impl SourceFile {
    /// Makes a source from bytes; fails on text that is not UTF-8.
    pub fn from_bytes(path: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<Self, FileError> {
        let path = path.into();
        let text = match std::str::from_utf8(&bytes) {
            Ok(text) => text,
            Err(error) => {
                let (line, column) = line_col_of_bytes(&bytes, error.valid_up_to());
                return Err(FileError::at(
                    path,
                    line,
                    column,
                    "file is not valid UTF-8; ctfix leaves it untouched",
                ));
            }
        };
        let (bom, text) = match text.strip_prefix(BOM) {
            Some(rest) => (true, rest.to_owned()),
            None => (false, text.to_owned()),
        };
        Ok(SourceFile {
            path,
            bytes,
            bom,
            text,
        })
    }

    /// The file's bytes with `text` replaced by `new_text` (the BOM kept).
    pub fn bytes_with_text(&self, new_text: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(new_text.len() + BOM.len());
        if self.bom {
            out.extend_from_slice(BOM.as_bytes());
        }
        out.extend_from_slice(new_text.as_bytes());
        out
    }

    /// 1-based line and column (in characters) of a byte offset into `text`.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        line_col(&self.text, offset)
    }

    /// The line ending this file uses: `\r\n` when most of its lines end so, else `\n`.
    pub fn newline(&self) -> &'static str {
        let lf = memchr::memchr_iter(b'\n', self.text.as_bytes()).count();
        let crlf = memchr::memmem::find_iter(self.text.as_bytes(), b"\r\n").count();
        if crlf * 2 > lf {
            "\r\n"
        } else {
            "\n"
        }
    }
}

/// Reads a file.
pub fn read_source(path: &Path) -> Result<SourceFile, FileError> {
    let bytes = std::fs::read(path)
        .map_err(|error| FileError::new(path, format!("cannot read file: {error}")))?;
    SourceFile::from_bytes(path, bytes)
}

/// Parses a source; a syntax error carries the parser's position and message.
pub fn parse_source(source: &SourceFile) -> Result<Body, FileError> {
    hcl_edit::parser::parse_body(&source.text).map_err(|error| {
        let location = error.location();
        FileError::at(
            &source.path,
            location.line(),
            location.column(),
            format!(
                "cannot parse HCL: {}; ctfix leaves this file untouched\n{error}",
                error.message()
            ),
        )
    })
}

/// 1-based line and column (in characters) of a byte offset into `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = memchr::memchr_iter(b'\n', before).count() + 1;
    let line_start = memchr::memrchr(b'\n', before).map_or(0, |i| i + 1);
    let column = text
        .get(line_start..offset)
        .map_or(offset - line_start, |s| s.chars().count())
        + 1;
    (line, column)
}

fn line_col_of_bytes(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset];
    let line = memchr::memchr_iter(b'\n', before).count() + 1;
    let line_start = memchr::memrchr(b'\n', before).map_or(0, |i| i + 1);
    (line, offset - line_start + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bom_is_stripped_and_restored() {
        let bytes = format!("{BOM}a = 1\n").into_bytes();
        let source = SourceFile::from_bytes("x.tf", bytes.clone()).unwrap();
        assert!(source.bom);
        assert_eq!(source.text, "a = 1\n");
        assert_eq!(source.bytes_with_text(&source.text), bytes);
    }

    #[test]
    fn non_utf8_is_an_error_with_position() {
        let error = SourceFile::from_bytes("x.tf", b"a = 1\nb = \"\xff\"\n".to_vec()).unwrap_err();
        assert_eq!((error.line, error.column), (Some(2), Some(6)));
    }

    #[test]
    fn positions_count_characters() {
        assert_eq!(line_col("ab\ncé=x", 7), (2, 4));
        assert_eq!(line_col("", 0), (1, 1));
    }

    #[test]
    fn newline_style_follows_the_majority() {
        let crlf = SourceFile::from_bytes("x.tf", b"a = 1\r\nb = 2\r\n".to_vec()).unwrap();
        assert_eq!(crlf.newline(), "\r\n");
        let lf = SourceFile::from_bytes("x.tf", b"a = 1\nb = 2\n".to_vec()).unwrap();
        assert_eq!(lf.newline(), "\n");
    }

    #[test]
    fn syntax_error_has_position() {
        let source = SourceFile::from_bytes("x.tf", b"a = 1\nb = {\n".to_vec()).unwrap();
        let error = parse_source(&source).unwrap_err();
        assert_eq!(
            error.line,
            Some(2),
            "the parser reports the end of input on the last line"
        );
        assert!(error.message.contains("cannot parse HCL"));
    }
}
