//! Stage 2: read a file and parse it with hcl-edit, keeping the exact bytes so that fixes can
//! be spliced into the original text.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

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
                let what = if bytes.starts_with(b"\xff\xfe") || bytes.starts_with(b"\xfe\xff") {
                    "file is UTF-16, which Terraform does not read; ctfix leaves it untouched (save it as UTF-8)"
                } else {
                    "file is not valid UTF-8, which Terraform requires; ctfix leaves it untouched (convert it to UTF-8, or remove it if it is not Terraform)"
                };
                let (line, column) = line_col_of_bytes(&bytes, error.valid_up_to());
                return Err(FileError::at(path, line, column, what));
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
    let bytes = std::fs::read(path).map_err(|error| {
        let what = if error.kind() == std::io::ErrorKind::NotFound {
            "it disappeared while ctfix ran (run ctfix again)"
        } else {
            "ctfix skipped it (check that it is a readable file)"
        };
        FileError::new(path, format!("cannot read file: {error}; {what}"))
    })?;
    SourceFile::from_bytes(path, bytes)
}

/// The stack of the thread [`parse_source`] parses on. hcl-edit's parser is recursive; it
/// refuses input nested deeper than 64 levels, but a debug build needs up to ~64 KiB of stack
/// per level (`[for …]` inside `[for …]`), more than the 2 MiB a rayon worker has. The memory is
/// only reserved: the thread touches what it uses.
pub const PARSE_STACK_SIZE: usize = 64 << 20;

/// The largest text [`parse_source`] parses: hcl-edit's syntax tree takes ~32 bytes of memory
/// per byte of input, and ctfix holds two (before and after the fix), so a 50 MB file would need
/// over 3 GB. Machine-generated files that large hold no hand-written trail.
pub const MAX_PARSE_SIZE: usize = 16 << 20;

/// Text with at most this many bytes that can open a nesting level is parsed on the calling
/// thread: it cannot nest deeper than that, which any thread's stack holds, nor make the parser
/// backtrack for long (see [`parse_deadline`]).
const SHALLOW: usize = 8;

/// How long parsing a text of `len` bytes may take before ctfix gives up on the file.
///
/// hcl-edit 0.10's parser backtracks exponentially on some malformed input: 150 bytes of
/// unclosed objects with binary operators (`a = {k&&k&&{k&&k&&…`) take seconds, 300 bytes
/// would take years. Valid files parse at megabytes per second even in a debug build, so the
/// deadline (5 s, plus 4 ms per KiB) only ever stops such input. The parser thread cannot be
/// stopped; it is abandoned and ends with the process.
pub fn parse_deadline(len: usize) -> Duration {
    Duration::from_secs(5) + Duration::from_millis(4 * (len / 1024) as u64)
}

/// Parses a source; a syntax error carries the parser's position and message.
///
/// Unless the text is trivially shallow, the parser runs on a helper thread with a
/// [`PARSE_STACK_SIZE`] stack (one per calling thread, kept for later parses), so that deeply
/// nested input is rejected with an error instead of overflowing the caller's stack, and
/// input that makes the parser run away is given up after [`parse_deadline`].
pub fn parse_source(source: &SourceFile) -> Result<Body, FileError> {
    if source.text.len() > MAX_PARSE_SIZE {
        return Err(FileError::new(
            &source.path,
            format!(
                "is {:.1} MiB; ctfix does not parse Terraform files over {} MiB (their syntax tree takes ~30 times the file's size in memory) and leaves it untouched (fix any trail in it by hand, or split the file)",
                source.text.len() as f64 / f64::from(1 << 20),
                MAX_PARSE_SIZE >> 20
            ),
        ));
    }
    match parse_on_large_stack(&source.text) {
        Ok(body) => Ok(body),
        Err(Failure::Syntax(error)) => {
            let location = error.location();
            Err(FileError::at(
                &source.path,
                location.line(),
                location.column(),
                format!(
                    "cannot parse HCL: {}; ctfix leaves this file untouched\n{}",
                    error.message(),
                    render_parse_error(&error)
                ),
            ))
        }
        Err(Failure::TooSlow(deadline)) => Err(FileError::new(
            &source.path,
            format!(
                "cannot parse HCL: the parser gave no answer within {} s, which happens on some malformed input (such as unclosed `{{` mixed with operators); ctfix leaves this file untouched (check its syntax with `terraform fmt -check`)",
                deadline.as_secs()
            ),
        )),
    }
}

/// Why a text did not parse.
enum Failure {
    /// A syntax error.
    Syntax(hcl_edit::parser::Error),
    /// No answer within the deadline.
    TooSlow(Duration),
}

type Parsed = Result<Body, hcl_edit::parser::Error>;

/// A long-lived thread with a large stack that parses what it is sent.
struct ParserThread {
    jobs: mpsc::Sender<String>,
    results: mpsc::Receiver<std::thread::Result<Parsed>>,
}

/// What became of a text sent to a [`ParserThread`].
enum Answer {
    /// The parser's result, or its panic.
    Done(std::thread::Result<Parsed>),
    /// The deadline passed; the thread is still busy.
    Late,
    /// The thread is gone.
    Gone,
}

impl ParserThread {
    fn spawn() -> std::io::Result<ParserThread> {
        let (jobs, job_queue) = mpsc::channel::<String>();
        let (result_queue, results) = mpsc::channel();
        std::thread::Builder::new()
            .name("ctfix-parse".to_owned())
            .stack_size(PARSE_STACK_SIZE)
            .spawn(move || {
                for text in job_queue {
                    let parsed = std::panic::catch_unwind(|| hcl_edit::parser::parse_body(&text));
                    if result_queue.send(parsed).is_err() {
                        break;
                    }
                }
            })?;
        Ok(ParserThread { jobs, results })
    }

    fn parse(&self, text: &str, deadline: Duration) -> Answer {
        if self.jobs.send(text.to_owned()).is_err() {
            return Answer::Gone;
        }
        match self.results.recv_timeout(deadline) {
            Ok(parsed) => Answer::Done(parsed),
            Err(mpsc::RecvTimeoutError::Timeout) => Answer::Late,
            Err(mpsc::RecvTimeoutError::Disconnected) => Answer::Gone,
        }
    }
}

thread_local! {
    /// This thread's parser thread, started on first need; it ends with this thread.
    static PARSER: RefCell<Option<ParserThread>> = const { RefCell::new(None) };
}

/// `hcl_edit::parser::parse_body`, on this thread's [`ParserThread`] unless the text is
/// trivially shallow (or no thread can be started). A panic in the parser is re-raised here.
fn parse_on_large_stack(text: &str) -> Result<Body, Failure> {
    let openers = text
        .bytes()
        .filter(|b| matches!(b, b'[' | b'(' | b'{' | b'!' | b'-' | b'?'))
        .take(SHALLOW + 1)
        .count();
    if openers <= SHALLOW {
        return hcl_edit::parser::parse_body(text).map_err(Failure::Syntax);
    }
    let deadline = parse_deadline(text.len());
    let answer = PARSER.with_borrow_mut(|slot| {
        if slot.is_none() {
            *slot = ParserThread::spawn().ok();
        }
        let answer = slot
            .as_ref()
            .map_or(Answer::Gone, |parser| parser.parse(text, deadline));
        if !matches!(answer, Answer::Done(_)) {
            // Busy for good, or gone: the next parse gets a new thread.
            *slot = None;
        }
        answer
    });
    match answer {
        Answer::Done(Ok(parsed)) => parsed.map_err(Failure::Syntax),
        Answer::Done(Err(panic)) => std::panic::resume_unwind(panic),
        Answer::Late => Err(Failure::TooSlow(deadline)),
        Answer::Gone => hcl_edit::parser::parse_body(text).map_err(Failure::Syntax),
    }
}

/// Characters of the offending line shown on each side of the error column.
const SNIPPET_CONTEXT: usize = 60;

/// The parser's error as hcl-edit renders it (the line and a caret under the column), but safe
/// to print: a long line is cut to [`SNIPPET_CONTEXT`] characters around the column, and
/// control and bidirectional-formatting characters (binary garbage, terminal escapes,
/// "Trojan Source" reordering) are shown as `�`.
pub fn render_parse_error(error: &hcl_edit::parser::Error) -> String {
    let location = error.location();
    let column = location.column().max(1);
    let chars: Vec<char> = error.line().chars().collect();
    let start = column.saturating_sub(SNIPPET_CONTEXT + 1).min(chars.len());
    let end = (column + SNIPPET_CONTEXT).min(chars.len());
    let mut shown = String::new();
    if start > 0 {
        shown.push('…');
    }
    shown.extend(chars[start..end].iter().map(|&c| printable(c)));
    if end < chars.len() {
        shown.push('…');
    }
    let caret_column = column - start + usize::from(start > 0);
    let number = location.line().to_string();
    let pad = " ".repeat(number.len());
    format!(
        "{pad}--> HCL parse error in line {number}, column {column}\n\
         {pad} |\n\
         {number} | {shown}\n\
         {pad} | {caret:>caret_column$}---\n\
         {pad} |\n\
         {pad} = {message}",
        caret = '^',
        message = error.message().chars().map(printable).collect::<String>(),
    )
}

/// `c`, or `�` for a character a terminal would act on rather than show; a tab becomes a
/// space so that the caret stays under its column.
fn printable(c: char) -> char {
    match c {
        '\t' => ' ',
        '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => '\u{fffd}',
        c if c.is_control() => '\u{fffd}',
        c => c,
    }
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
    fn utf16_is_named() {
        let error = SourceFile::from_bytes("x.tf", b"\xff\xfea\0=\0".to_vec()).unwrap_err();
        assert!(error.message.contains("UTF-16"), "{}", error.message);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        // A 256 KiB stack overflows in a debug build unless the parser has a stack of its own.
        let depth = 64;
        let text = format!(
            "a = {}x{}\nb = {}x{}\n",
            "[for x in ".repeat(depth),
            " : x]".repeat(depth),
            "[for x in ".repeat(depth + 1),
            " : x]".repeat(depth + 1)
        );
        let source = SourceFile::from_bytes("x.tf", text.into_bytes()).unwrap();
        let error = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || parse_source(&source).map(|_| ()))
            .unwrap()
            .join()
            .unwrap()
            .unwrap_err();
        assert_eq!(error.line, Some(2));
        assert!(error.message.contains("nest"), "{}", error.message);
    }

    #[test]
    fn runaway_parsing_is_given_up() {
        // Exponential backtracking in hcl-edit 0.10: this would take years.
        let text = format!("a = {}", "{k&&k&&".repeat(40));
        let source = SourceFile::from_bytes("x.tf", text.into_bytes()).unwrap();
        let start = std::time::Instant::now();
        let error = parse_source(&source).unwrap_err();
        assert!(start.elapsed() < parse_deadline(source.text.len()) * 2);
        assert!(
            error.message.contains("no answer within 5 s"),
            "{}",
            error.message
        );
        // The next parse on this thread gets a fresh parser thread.
        let fine = SourceFile::from_bytes("y.tf", b"a = [[[[[[[[[[1]]]]]]]]]]\n".to_vec()).unwrap();
        assert!(parse_source(&fine).is_ok());
    }

    #[test]
    fn error_snippet_is_cut_and_printable() {
        let text = format!(
            "a = \"\x1b[31m\u{202e}\"\nb = {}\n",
            "1 +".repeat(1_000_000)
        );
        let source = SourceFile::from_bytes("x.tf", text.into_bytes()).unwrap();
        let error = parse_source(&source).unwrap_err();
        assert!(error.message.len() < 1_000, "{}", error.message.len());
        assert!(error.message.contains('…'));
        let garbage =
            SourceFile::from_bytes("x.tf", b"a = \"\x1b[2J\x07\" \x1b]0;x\x07 {\n".to_vec())
                .unwrap();
        let error = parse_source(&garbage).unwrap_err();
        assert!(!error.message.contains('\x1b'), "{:?}", error.message);
        assert!(!error.message.contains('\x07'), "{:?}", error.message);
        assert!(error.message.contains("--> HCL parse error in line 1"));
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
