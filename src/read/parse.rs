//! Stage 2: read a file and parse it with hcl-edit, keeping the exact bytes so that fixes can
//! be spliced into the original text.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hcl_edit::expr::{Expression, Object, ObjectKey};
use hcl_edit::structure::Body;
use hcl_edit::visit::Visit;
use hcl_edit::Span;

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
/// input that makes the parser run away is given up after [`parse_deadline`] (for all attempts
/// together).
///
/// A key repeated in an object constructor (`{ a = 1, a = 2 }`) is valid Terraform (the last
/// one wins) but a syntax error for hcl-edit; such files are parsed as described at
/// [`parse_allowing_duplicate_keys`]. `source.text` itself is never changed.
pub fn parse_source(source: &SourceFile) -> Result<Body, FileError> {
    parse_text(&source.path, &source.text)
}

/// [`parse_source`] of `text` read from `path` (a part of a file, blanked around it:
/// [`crate::module`] parses blocks on their own).
pub fn parse_text(path: &Path, text: &str) -> Result<Body, FileError> {
    if text.len() > MAX_PARSE_SIZE {
        return Err(FileError::new(
            path,
            format!(
                "is {:.1} MiB; ctfix does not parse Terraform files over {} MiB (their syntax tree takes ~30 times the file's size in memory) and leaves it untouched (fix any trail in it by hand, or split the file)",
                text.len() as f64 / f64::from(1 << 20),
                MAX_PARSE_SIZE >> 20
            ),
        ));
    }
    let deadline = parse_deadline(text.len());
    match parse_allowing_duplicate_keys(text, Instant::now() + deadline) {
        Ok(body) => Ok(body),
        Err(Failure::Syntax(error)) => {
            let location = error.location();
            // The error may come from a copy with renamed keys: show the original line.
            let line = text
                .split('\n')
                .nth(location.line().saturating_sub(1))
                .unwrap_or_default();
            Err(FileError::at(
                path,
                location.line(),
                location.column(),
                format!(
                    "cannot parse HCL: {}; ctfix leaves this file untouched\n{}",
                    error.message(),
                    render_snippet(line, location, error.message())
                ),
            ))
        }
        Err(Failure::TooSlow) => Err(FileError::new(
            path,
            format!(
                "cannot parse HCL: the parser gave no answer within {} s, which happens on some malformed input (such as unclosed `{{` mixed with operators); ctfix leaves this file untouched (check its syntax with `terraform fmt -check`)",
                deadline.as_secs()
            ),
        )),
    }
}

/// The end of hcl-edit's message for a key repeated in an object constructor; the error is
/// located at the start of the repeated (later) key.
const DUPLICATE_KEY_MESSAGE: &str = "found redefined object key";

/// How many repeated object keys one file may have before [`parse_allowing_duplicate_keys`]
/// gives up (each costs a parse of the whole text).
const MAX_RENAMED_KEYS: usize = 64;

/// Whether `error` is hcl-edit's complaint about a key repeated in an object constructor.
fn is_duplicate_key(error: &hcl_edit::parser::Error) -> bool {
    error.message().contains(DUPLICATE_KEY_MESSAGE)
}

/// Parses `text`, accepting keys repeated in object constructors as Terraform does.
///
/// hcl-edit rejects `{ a = 1, a = 2 }`; Terraform keeps the last value. When that is the only
/// obstacle, the text is parsed from a copy in which every occurrence of a repeated key except
/// the last is replaced by a fresh key of the same byte length (an identifier, or a quoted
/// string for a quoted key), so that every span of the tree is still an offset into `text`,
/// where ctfix splices its edits. The tree thus holds the value Terraform uses under the real
/// key (last wins), plus the earlier values under keys that occur nowhere in `text`.
///
/// hcl-edit reports only the later occurrence, so this takes two rounds: rename each reported
/// key until the copy parses, then find each renamed key's earlier namesakes in its object in
/// that tree and parse a fresh copy of `text` in which those are renamed instead. Should that
/// second copy not parse (it always does, barring a fresh key that collides with an escaped
/// string key), the first tree is used: there the first occurrence wins.
///
/// A repeated key that is neither an identifier nor a plain quoted string (`(var.k)`,
/// `"${k}"`), more than [`MAX_RENAMED_KEYS`] of them, or any other syntax error is reported as
/// the parser's error.
fn parse_allowing_duplicate_keys(text: &str, until: Instant) -> Result<Body, Failure> {
    let mut error = match parse_on_large_stack(text, until) {
        Err(Failure::Syntax(error)) if is_duplicate_key(&error) => error,
        other => return other,
    };
    // Round 1: rename the later occurrences, as reported, until the copy parses.
    let mut fresh = FreshKeys::new(text);
    let mut copy = text.to_owned();
    let mut renamed = Vec::new();
    let first_tree = loop {
        let Some(key) = (renamed.len() < MAX_RENAMED_KEYS)
            .then(|| RepeatedKey::at(text, error.location().offset()))
            .flatten()
        else {
            return Err(Failure::Syntax(error));
        };
        let Some(name) = fresh.replacement(&key) else {
            return Err(Failure::Syntax(error));
        };
        copy.replace_range(key.span.clone(), &name);
        renamed.push(key);
        match parse_on_large_stack(&copy, until) {
            Ok(body) => break body,
            Err(Failure::Syntax(next)) if is_duplicate_key(&next) => error = next,
            Err(other) => return Err(other),
        }
    };
    // Round 2: keep the last occurrence of each key instead of the first.
    let mut fresh = FreshKeys::new(text);
    let mut copy = text.to_owned();
    for key in earlier_occurrences(&first_tree, text, renamed) {
        match fresh.replacement(&key) {
            Some(name) => copy.replace_range(key.span.clone(), &name),
            None => return Ok(first_tree),
        }
    }
    match parse_on_large_stack(&copy, until) {
        Ok(body) => Ok(body),
        Err(Failure::TooSlow) => Err(Failure::TooSlow),
        Err(Failure::Syntax(_)) => Ok(first_tree),
    }
}

/// An object key in the text that [`parse_allowing_duplicate_keys`] renames.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RepeatedKey {
    /// Where it is: the identifier, or the string with its quotes.
    span: Range<usize>,
    /// The key as hcl-edit compares keys: an identifier never equals a string.
    id: KeyId,
}

/// An object key's identity as hcl-edit's duplicate check sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyId {
    /// `name = …`
    Ident(String),
    /// `"value" = …`, the value with its escapes resolved.
    Quoted(String),
}

impl KeyId {
    /// The identity of a key in a tree, when it is an identifier or a plain string.
    fn of(key: &ObjectKey) -> Option<KeyId> {
        match key {
            ObjectKey::Ident(ident) => Some(KeyId::Ident(ident.as_str().to_owned())),
            ObjectKey::Expression(Expression::String(s)) => {
                Some(KeyId::Quoted(s.value().to_string()))
            }
            ObjectKey::Expression(_) => None,
        }
    }
}

impl RepeatedKey {
    /// The key starting at byte `start` of `text` (where hcl-edit locates its error), if it is
    /// an identifier or a plain quoted string followed by `=` or `:`.
    fn at(text: &str, start: usize) -> Option<RepeatedKey> {
        let rest = text.get(start..)?;
        let first = rest.chars().next()?;
        let (end, id) = if first == '"' {
            let mut escaped = false;
            let close = rest.char_indices().skip(1).find_map(|(i, c)| {
                let closes = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                (closes || c == '\n').then_some((i, c))
            });
            let Some((close, '"')) = close else {
                return None;
            };
            let end = start + close + 1;
            // Interpolations (`"${k}"`) are templates, compared by structure: not renamed.
            let Ok(Expression::String(value)) = hcl_edit::parser::parse_expr(&text[start..end])
            else {
                return None;
            };
            (end, KeyId::Quoted(value.value().to_string()))
        } else {
            if !is_id_start(first) {
                return None;
            }
            let len = rest
                .char_indices()
                .find(|&(_, c)| !is_id_continue(c))
                .map_or(rest.len(), |(i, _)| i);
            let name = &rest[..len];
            // These parse as literals, not identifiers.
            if matches!(name, "null" | "true" | "false") {
                return None;
            }
            (start + len, KeyId::Ident(name.to_owned()))
        };
        // A traversal or an operation (`a.b = …`, `a + b = …`) is an expression key.
        let after = text[end..].trim_start_matches([' ', '\t']);
        (after.starts_with('=') || after.starts_with(':')).then_some(RepeatedKey {
            span: start..end,
            id,
        })
    }
}

/// Whether `c` may start an HCL identifier (`hcl_primitives::ident::is_id_start`, which
/// hcl-edit does not re-export).
fn is_id_start(c: char) -> bool {
    let mut buf = [0; 4];
    hcl_edit::Ident::try_new(&*c.encode_utf8(&mut buf)).is_ok()
}

/// Whether `c` may continue an HCL identifier.
fn is_id_continue(c: char) -> bool {
    let mut buf = [0; 5];
    buf[0] = b'a';
    let len = 1 + c.encode_utf8(&mut buf[1..]).len();
    std::str::from_utf8(&buf[..len]).is_ok_and(|s| hcl_edit::Ident::try_new(s).is_ok())
}

/// The keys to rename so that the last occurrence of each repeated key keeps its name: in each
/// object holding a key of `renamed` (the later occurrences, renamed in `tree`, a tree of
/// `text` with them renamed), every occurrence of that key but the last. A renamed key not
/// found in the tree stays renamed.
fn earlier_occurrences(tree: &Body, text: &str, renamed: Vec<RepeatedKey>) -> Vec<RepeatedKey> {
    /// Walks every object of the tree.
    struct Objects<'a> {
        text: &'a str,
        /// The renamed keys by the start of their span; removed once found.
        renamed: BTreeMap<usize, RepeatedKey>,
        out: Vec<RepeatedKey>,
    }
    impl Visit for Objects<'_> {
        fn visit_object(&mut self, object: &Object) {
            let mut keys: Vec<RepeatedKey> = Vec::new();
            let mut repeated = Vec::new();
            for (key, _) in object.iter() {
                let span = match key {
                    ObjectKey::Ident(ident) => ident.span(),
                    ObjectKey::Expression(expr) => expr.span(),
                };
                let Some(span) = span.filter(|s| self.text.get(s.clone()).is_some()) else {
                    continue;
                };
                let key = match self.renamed.remove(&span.start) {
                    Some(key) => {
                        if !repeated.contains(&key.id) {
                            repeated.push(key.id.clone());
                        }
                        key
                    }
                    None => match KeyId::of(key) {
                        Some(id) => RepeatedKey { span, id },
                        None => continue,
                    },
                };
                keys.push(key);
            }
            for id in &repeated {
                let mut occurrences: Vec<&RepeatedKey> =
                    keys.iter().filter(|k| &k.id == id).collect();
                occurrences.pop();
                self.out.extend(occurrences.into_iter().cloned());
            }
            hcl_edit::visit::visit_object(self, object);
        }
    }
    let mut objects = Objects {
        text,
        renamed: renamed.into_iter().map(|k| (k.span.start, k)).collect(),
        out: Vec::new(),
    };
    objects.visit_body(tree);
    let mut out = objects.out;
    out.extend(objects.renamed.into_values());
    // In text order, so that the fresh names do not vary from run to run.
    out.sort_by_key(|key| key.span.start);
    out
}

/// Fresh keys for one copy of a text: names that occur nowhere in it as a word, and differ
/// from each other.
struct FreshKeys<'a> {
    /// Every maximal run of identifier-like characters in the text (conservatively, any
    /// non-ASCII character counts as one).
    words: HashSet<&'a str>,
    /// Names handed out.
    used: HashSet<String>,
}

impl<'a> FreshKeys<'a> {
    /// Letters a fresh name starts with (HCL identifiers start with a letter).
    const FIRST: &'static [u8] = b"zyxwvutsrqponmlkjihgfedcbaZYXWVUTSRQPONMLKJIHGFEDCBA";
    /// Characters of the rest of a fresh name.
    const REST: &'static [u8] = b"_0123456789abcdefghijklmnopqrstuvwxyz";
    /// How many candidates are tried per name.
    const MAX_CANDIDATES: usize = 1 << 16;

    fn new(text: &'a str) -> Self {
        let words = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || !c.is_ascii()))
            .filter(|w| !w.is_empty())
            .collect();
        FreshKeys {
            words,
            used: HashSet::new(),
        }
    }

    /// The text replacing `key`: a fresh quoted string for a quoted key, a fresh identifier
    /// otherwise (also for `""`, which has no room for a name), of the same byte length; `None`
    /// when no such name is left.
    fn replacement(&mut self, key: &RepeatedKey) -> Option<String> {
        let len = key.span.len();
        if matches!(key.id, KeyId::Quoted(_)) && len > 2 {
            Some(format!("\"{}\"", self.name(len - 2)?))
        } else {
            self.name(len)
        }
    }

    /// A fresh identifier of `len` bytes.
    fn name(&mut self, len: usize) -> Option<String> {
        (0..Self::MAX_CANDIDATES)
            .map_while(|k| Self::candidate(k, len))
            .find(|name| {
                !self.words.contains(name.as_str())
                    && !self.used.contains(name)
                    && !matches!(
                        name.as_str(),
                        "null" | "true" | "false" | "for" | "in" | "if"
                    )
            })
            .inspect(|name| {
                self.used.insert(name.clone());
            })
    }

    /// The `k`-th identifier of `len` bytes (`z`, `y`, …; `z__`, `y__`, …), or `None` past the
    /// last one.
    fn candidate(k: usize, len: usize) -> Option<String> {
        let mut name = vec![Self::FIRST[k % Self::FIRST.len()]];
        let mut rest = k / Self::FIRST.len();
        for _ in 1..len {
            name.push(Self::REST[rest % Self::REST.len()]);
            rest /= Self::REST.len();
        }
        (len > 0 && rest == 0).then(|| String::from_utf8(name).expect("ASCII"))
    }
}

/// Why a text did not parse.
enum Failure {
    /// A syntax error.
    Syntax(hcl_edit::parser::Error),
    /// No answer within the deadline.
    TooSlow,
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

    fn parse(&self, text: &str, until: Instant) -> Answer {
        if self.jobs.send(text.to_owned()).is_err() {
            return Answer::Gone;
        }
        match self
            .results
            .recv_timeout(until.saturating_duration_since(Instant::now()))
        {
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
/// trivially shallow (or no thread can be started), given up at `until`. A panic in the parser
/// is re-raised here.
fn parse_on_large_stack(text: &str, until: Instant) -> Result<Body, Failure> {
    let openers = text
        .bytes()
        .filter(|b| matches!(b, b'[' | b'(' | b'{' | b'!' | b'-' | b'?'))
        .take(SHALLOW + 1)
        .count();
    if openers <= SHALLOW {
        return hcl_edit::parser::parse_body(text).map_err(Failure::Syntax);
    }
    let answer = PARSER.with_borrow_mut(|slot| {
        if slot.is_none() {
            *slot = ParserThread::spawn().ok();
        }
        let answer = slot
            .as_ref()
            .map_or(Answer::Gone, |parser| parser.parse(text, until));
        if !matches!(answer, Answer::Done(_)) {
            // Busy for good, or gone: the next parse gets a new thread.
            *slot = None;
        }
        answer
    });
    match answer {
        Answer::Done(Ok(parsed)) => parsed.map_err(Failure::Syntax),
        Answer::Done(Err(panic)) => std::panic::resume_unwind(panic),
        Answer::Late => Err(Failure::TooSlow),
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
    render_snippet(error.line(), error.location(), error.message())
}

/// [`render_parse_error`] of an error at `location` in `line` with `message`.
fn render_snippet(line: &str, location: &hcl_edit::parser::Location, message: &str) -> String {
    let column = location.column().max(1);
    let chars: Vec<char> = line.chars().collect();
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
        message = message.chars().map(printable).collect::<String>(),
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

    /// `local.<path>` of a one-file module made of `text`.
    fn resolve_local(text: &str, path: &str) -> crate::resolve::Value {
        let source = SourceFile::from_bytes("main.tf", text.as_bytes().to_vec()).unwrap();
        let module = crate::module::Module::from_sources(Path::new("."), vec![source]);
        assert!(module.errors.is_empty(), "{:?}", module.errors);
        let expr = hcl_edit::parser::parse_expr(&format!("local.{path}")).unwrap();
        crate::resolve::Resolver::new(&module).resolve(&expr, 0).0
    }

    /// Parses `text`, checks that every object key's span is where that key is in `text`, or a
    /// key renamed to a name that occurs nowhere in `text`, and returns the tree.
    fn parse_keeping_spans(text: &str) -> Body {
        struct Keys<'a>(&'a str);
        impl Visit for Keys<'_> {
            fn visit_object(&mut self, object: &Object) {
                for (key, _) in object.iter() {
                    let span = match key {
                        ObjectKey::Ident(ident) => ident.span(),
                        ObjectKey::Expression(expr) => expr.span(),
                    };
                    let original = &self.0[span.unwrap()];
                    let original = match hcl_edit::parser::parse_expr(original).unwrap() {
                        Expression::Variable(name) => ObjectKey::Ident(name),
                        expr => ObjectKey::Expression(expr),
                    };
                    if original != *key {
                        let name = match KeyId::of(key).unwrap() {
                            KeyId::Ident(name) | KeyId::Quoted(name) => name,
                        };
                        assert!(!self.0.contains(&name), "{name:?} {original:?}");
                    }
                }
                hcl_edit::visit::visit_object(self, object);
            }
        }
        let source = SourceFile::from_bytes("x.tf", text.as_bytes().to_vec()).unwrap();
        let body = parse_source(&source).unwrap();
        assert_eq!(source.text, text);
        Keys(text).visit_body(&body);
        body
    }

    #[test]
    fn repeated_identifier_key_parses_and_the_last_wins() {
        let text = "locals {\n  x = {\n    a = 1\n    a = 2\n  }\n}\n";
        let body = parse_keeping_spans(text);
        let attr = body
            .blocks()
            .next()
            .unwrap()
            .body
            .get_attribute("x")
            .unwrap();
        assert_eq!(
            text.get(attr.value.span().unwrap()),
            Some("{\n    a = 1\n    a = 2\n  }")
        );
        assert_eq!(
            resolve_local(text, "x.a"),
            crate::resolve::Value::Number(2.0)
        );
    }

    #[test]
    fn repeated_quoted_key_parses_and_the_last_wins() {
        let text = "locals {\n  x = { \"a\" = \"first\", \"a\" = \"last\" }\n}\n";
        parse_keeping_spans(text);
        assert_eq!(
            resolve_local(text, "x.a"),
            crate::resolve::Value::String("last".into())
        );
        // Escapes: hcl-edit compares values, so `"\u0061"` repeats `"a"`.
        let text = "locals {\n  x = { \"a\" = 1, \"\\u0061\" = 2 }\n}\n";
        parse_keeping_spans(text);
        assert_eq!(
            resolve_local(text, "x.a"),
            crate::resolve::Value::Number(2.0)
        );
    }

    #[test]
    fn three_occurrences_keep_the_last() {
        let text = "locals {\n  x = { a = 1, b = 0, a = 2, a = 3 }\n}\n";
        let body = parse_keeping_spans(text);
        let attr = body
            .blocks()
            .next()
            .unwrap()
            .body
            .get_attribute("x")
            .unwrap();
        let Expression::Object(object) = &attr.value else {
            panic!("{:?}", attr.value)
        };
        let keys: Vec<String> = object
            .iter()
            .map(|(key, _)| match key {
                ObjectKey::Ident(ident) => ident.to_string(),
                ObjectKey::Expression(expr) => expr.to_string(),
            })
            .collect();
        assert_eq!(keys.len(), 4);
        assert_eq!(keys.iter().filter(|k| k.trim() == "a").count(), 1);
        assert_eq!(keys[3].trim(), "a", "{keys:?}");
        assert_eq!(
            resolve_local(text, "x.a"),
            crate::resolve::Value::Number(3.0)
        );
        assert_eq!(
            resolve_local(text, "x.b"),
            crate::resolve::Value::Number(0.0)
        );
    }

    #[test]
    fn repeated_keys_in_nested_objects() {
        let text = "locals {\n  x = {\n    a = { b = 1, b = 2 }\n    a = { b = 3, \"b\" = 4, b = 5 }\n    c = [{ d = 1, d = 2 }]\n  }\n}\n";
        parse_keeping_spans(text);
        assert_eq!(
            resolve_local(text, "x.a.b"),
            crate::resolve::Value::Number(5.0)
        );
        assert_eq!(
            resolve_local(text, "x.c[0].d"),
            crate::resolve::Value::Number(2.0)
        );
    }

    #[test]
    fn fresh_keys_avoid_every_word_of_the_text() {
        // One-letter keys: the fresh name for the first `z` is none of `z`, `y`, `x`.
        let text = "locals {\n  x = { z = 1, y = 2, z = 3 }\n}\n";
        parse_keeping_spans(text);
        let crate::resolve::Value::Object(map) = resolve_local(text, "x") else {
            panic!()
        };
        assert_eq!(map.get("z"), Some(&crate::resolve::Value::Number(3.0)));
        assert_eq!(map.get("y"), Some(&crate::resolve::Value::Number(2.0)));
        assert_eq!(map.len(), 3, "{map:?}");
        // `""` has no room for a quoted name; an identifier of two bytes takes its place.
        let text = "locals {\n  x = { \"\" = 1, \"\" = 2 }\n}\n";
        parse_keeping_spans(text);
        assert_eq!(
            resolve_local(text, "x[\"\"]"),
            crate::resolve::Value::Number(2.0)
        );
    }

    #[test]
    fn unrenamable_repeated_keys_stay_errors() {
        for (text, column) in [
            ("x = { (k) = 1, (k) = 2 }\n", 16),
            ("x = { \"${k}\" = 1, \"${k}\" = 2 }\n", 19),
            ("x = { a.b = 1, a.b = 2 }\n", 16),
        ] {
            let source = SourceFile::from_bytes("x.tf", text.as_bytes().to_vec()).unwrap();
            let error = parse_source(&source).unwrap_err();
            assert_eq!(
                (error.line, error.column),
                (Some(1), Some(column)),
                "{text}"
            );
            assert!(
                error.message.contains("redefined object key"),
                "{}",
                error.message
            );
        }
        // More than MAX_RENAMED_KEYS.
        let items: Vec<String> = (0..=MAX_RENAMED_KEYS).map(|i| format!("a = {i}")).collect();
        let text = format!("x = {{ {} }}\n", items.join(", "));
        let source = SourceFile::from_bytes("x.tf", text.into_bytes()).unwrap();
        let error = parse_source(&source).unwrap_err();
        assert!(
            error.message.contains("redefined object key"),
            "{}",
            error.message
        );
    }

    #[test]
    fn other_errors_after_repeated_keys_show_the_original_line() {
        let text = "x = { abc = 1, abc = 2 } = 3\n";
        let source = SourceFile::from_bytes("x.tf", text.as_bytes().to_vec()).unwrap();
        let error = parse_source(&source).unwrap_err();
        assert_eq!(error.line, Some(1));
        assert!(!error.message.contains("redefined"), "{}", error.message);
        assert!(
            error.message.contains("1 | x = { abc = 1, abc = 2 } = 3"),
            "{}",
            error.message
        );
    }

    #[test]
    fn repeated_keys_in_a_large_file_parse_on_the_parser_thread() {
        // More than SHALLOW openers: parsed on the helper thread, under the deadline.
        let text = format!(
            "locals {{\n  x = {{ a = [[[[[[[[[1]]]]]]]]], a = 2 }}\n}}\n{}",
            (0..20).map(|i| format!("y{i} = [1]\n")).collect::<String>()
        );
        parse_keeping_spans(&text);
        assert_eq!(
            resolve_local(&text, "x.a"),
            crate::resolve::Value::Number(2.0)
        );
    }
}
