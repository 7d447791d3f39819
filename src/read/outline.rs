//! The top-level blocks of a Terraform file — type, labels and byte range — found by a
//! byte scan instead of a parse.
//!
//! A module that holds a trail is judged from a few of its blocks (keys, variables, locals,
//! outputs …), but parsing every file of it in full with hcl-edit was most of the time ctfix
//! spent on trees dense with trails. The outline lets [`crate::module::Module`] list what a
//! file declares and parse only the blocks the judgement reads.
//!
//! The scan is deliberately narrow: it understands comments, quoted strings with `${…}` and
//! `%{…}` templates, and braces. On anything else it is not sure of — a heredoc, a top-level
//! attribute, a label with an escape, an unclosed string or brace — it answers `None`, and the
//! file is parsed in full as before. Each block it outlines is checked again when parsed (the
//! parser must find exactly that block at exactly that range).

use std::ops::Range;

/// One top-level block as the scan sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The block type (`resource`, `variable`, …).
    pub ident: String,
    /// The labels, unquoted.
    pub labels: Vec<String>,
    /// From the first byte of the type to one past the closing `}`: the block's span as
    /// hcl-edit reports it.
    pub span: Range<usize>,
}

/// The top-level blocks of a parsed file as an outline (what [`outline`] must agree with);
/// `None` if the file holds anything but blocks.
pub fn headers_of(body: &hcl_edit::structure::Body) -> Option<Vec<Header>> {
    body.iter()
        .map(|structure| {
            let block = structure.as_block()?;
            Some(Header {
                ident: block.ident.as_str().to_owned(),
                labels: block.labels.iter().map(|l| l.as_str().to_owned()).collect(),
                span: hcl_edit::Span::span(block)?,
            })
        })
        .collect()
}

/// The top-level blocks of `text`, in order, or `None` when the scan is not sure of them.
pub fn outline(text: &str) -> Option<Vec<Header>> {
    let bytes = text.as_bytes();
    let mut headers = Vec::new();
    let mut i = 0;
    loop {
        i = skip_trivia(bytes, i)?;
        if i == bytes.len() {
            return Some(headers);
        }
        let start = i;
        let ident_end = identifier_end(bytes, i)?;
        let ident = &text[i..ident_end];
        i = ident_end;
        let mut labels = Vec::new();
        loop {
            i = skip_inline_space(bytes, i);
            match bytes.get(i)? {
                b'{' => break,
                b'"' => {
                    let end = label_end(bytes, i + 1)?;
                    labels.push(text[i + 1..end].to_owned());
                    i = end + 1;
                }
                _ => {
                    let end = identifier_end(bytes, i)?;
                    labels.push(text[i..end].to_owned());
                    i = end;
                }
            }
        }
        let close = body_end(bytes, i + 1)?;
        i = close + 1;
        // What follows a block's `}` on its line: spaces and a comment at most.
        i = skip_inline_space(bytes, i);
        match bytes.get(i) {
            None | Some(b'\n') => {}
            Some(b'\r') if bytes.get(i + 1) == Some(&b'\n') => {}
            Some(b'#') => {}
            Some(b'/') if matches!(bytes.get(i + 1), Some(b'/' | b'*')) => {}
            Some(_) => return None,
        }
        headers.push(Header {
            ident: ident.to_owned(),
            labels,
            span: start..close + 1,
        });
    }
}

/// Past spaces, tabs, newlines and comments; `None` on an unclosed `/*`.
fn skip_trivia(bytes: &[u8], mut i: usize) -> Option<usize> {
    loop {
        match bytes.get(i) {
            Some(b' ' | b'\t' | b'\n' | b'\r') => i += 1,
            Some(b'#') => i = line_end(bytes, i),
            Some(b'/') if bytes.get(i + 1) == Some(&b'/') => i = line_end(bytes, i),
            Some(b'/') if bytes.get(i + 1) == Some(&b'*') => i = comment_end(bytes, i + 2)?,
            _ => return Some(i),
        }
    }
}

/// Past spaces and tabs.
fn skip_inline_space(bytes: &[u8], mut i: usize) -> usize {
    while matches!(bytes.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    i
}

/// The index of the `\n` ending the line at `i` (or the end of the text).
fn line_end(bytes: &[u8], i: usize) -> usize {
    memchr::memchr(b'\n', &bytes[i..]).map_or(bytes.len(), |n| i + n)
}

/// Past the `*/` closing a comment whose text starts at `i`.
fn comment_end(bytes: &[u8], i: usize) -> Option<usize> {
    memchr::memmem::find(&bytes[i..], b"*/").map(|n| i + n + 2)
}

/// The end of an ASCII identifier starting at `i` (`None` when none starts there). Others
/// (Unicode letters) are valid HCL but rare enough to leave to the parser.
fn identifier_end(bytes: &[u8], i: usize) -> Option<usize> {
    if !bytes
        .get(i)
        .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
    {
        return None;
    }
    let mut end = i + 1;
    while bytes
        .get(end)
        .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
    {
        end += 1;
    }
    // A non-ASCII byte right after would continue the identifier.
    (bytes.get(end).is_none_or(u8::is_ascii)).then_some(end)
}

/// The index of the `"` closing a label whose text starts at `i`: labels with escapes or
/// template sequences are left to the parser.
fn label_end(bytes: &[u8], mut i: usize) -> Option<usize> {
    loop {
        match bytes.get(i)? {
            b'"' => return Some(i),
            b'\\' | b'\n' | b'\r' => return None,
            b'$' | b'%' if bytes.get(i + 1) == Some(&b'{') => return None,
            _ => i += 1,
        }
    }
}

/// Where the scan inside a block body is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    /// Expressions and nested blocks; closed by a `}`.
    Code,
    /// A quoted string; closed by a `"`.
    Quoted,
}

/// The bytes that can change the state of [`body_end`] in code and in a quoted string.
static CODE_SPECIAL: [bool; 256] = byte_set(b"\"{}#/<");
static QUOTED_SPECIAL: [bool; 256] = byte_set(b"\"\\\n$%");

const fn byte_set(bytes: &[u8]) -> [bool; 256] {
    let mut set = [false; 256];
    let mut i = 0;
    while i < bytes.len() {
        set[bytes[i] as usize] = true;
        i += 1;
    }
    set
}

/// The index of the `}` closing a block body that starts at `i` (just past its `{`).
fn body_end(bytes: &[u8], mut i: usize) -> Option<usize> {
    // Each entry is a context; `Code` entries are opened by `{` (a block body, an object, a
    // template's `${` / `%{`), `Quoted` ones by `"`.
    let mut stack = vec![Context::Code];
    loop {
        let context = *stack.last()?;
        // Straight to the next byte that can change the state.
        let special = match context {
            Context::Code => &CODE_SPECIAL,
            Context::Quoted => &QUOTED_SPECIAL,
        };
        i += bytes
            .get(i..)?
            .iter()
            .position(|&b| special[usize::from(b)])?;
        let byte = bytes[i];
        match context {
            Context::Code => match byte {
                b'"' => stack.push(Context::Quoted),
                b'{' => stack.push(Context::Code),
                b'}' => {
                    stack.pop();
                    if stack.is_empty() {
                        return Some(i);
                    }
                }
                b'#' => i = line_end(bytes, i) - 1,
                b'/' if bytes.get(i + 1) == Some(&b'/') => i = line_end(bytes, i) - 1,
                b'/' if bytes.get(i + 1) == Some(&b'*') => i = comment_end(bytes, i + 2)? - 1,
                // A heredoc: its text is not code, and its end is a line of its own.
                b'<' if bytes.get(i + 1) == Some(&b'<') => return None,
                _ => {}
            },
            Context::Quoted => match byte {
                b'"' => {
                    stack.pop();
                }
                b'\\' => i += 1,
                b'\n' => return None,
                // `$${` and `%%{` are the escapes for a literal `${` / `%{`.
                b'$' | b'%'
                    if bytes.get(i + 1) == Some(&byte) && bytes.get(i + 2) == Some(&b'{') =>
                {
                    i += 2;
                }
                b'$' | b'%' if bytes.get(i + 1) == Some(&b'{') => {
                    stack.push(Context::Code);
                    i += 1;
                }
                _ => {}
            },
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The outline must agree with hcl-edit's parse of the same text.
    fn agrees(text: &str) {
        let headers = outline(text).expect("outlined");
        let body = hcl_edit::parser::parse_body(text).expect("parses");
        let parsed = headers_of(&body).expect("only blocks");
        assert_eq!(headers, parsed, "{text}");
    }

    #[test]
    fn blocks_with_strings_templates_and_comments() {
        agrees(
            "# head\nresource \"aws_kms_key\" \"k\" {\n  description = \"}{ \\\" ${var.a} %{ if true }x%{ endif }\"\n  policy = jsonencode({ a = \"}\" })\n  # }\n  // }\n  /* } */\n}\n\nvariable x {\n  default = \"$${literal\"\n}\nlocals {\n  a = \"${ \"}\" }\"\n} # trailing\n",
        );
    }

    #[test]
    fn empty_and_comment_only_files() {
        agrees("");
        agrees("# nothing\n/* still\nnothing */\n");
        agrees("terraform {}\r\nprovider \"aws\" {\r\n  region = \"eu-west-1\"\r\n}\r\n");
    }

    #[test]
    fn what_it_is_not_sure_of_is_left_to_the_parser() {
        for text in [
            "resource \"a\" \"b\" {\n  p = <<EOF\n}\nEOF\n}\n",
            "x = 1\n",
            "resource \"a\\\"\" \"b\" {}\n",
            "resource \"a\" \"b\" {\n  s = \"open\n}\n",
            "resource \"a\" \"b\" {\n",
            "/* open\n",
            "resource \"a\" \"b\" {} resource \"c\" \"d\" {}\n",
            "résumé \"a\" {}\n",
        ] {
            assert_eq!(outline(text), None, "{text}");
        }
    }

    #[test]
    fn escaped_template_markers() {
        agrees("locals {\n  a = \"$${x}\"\n  b = \"$$${var.y}\"\n  c = \"%%{x}\"\n}\n");
    }
}
