//! `ctfix lsp`: a language server over standard input/output, so that ctfix's verdict sits
//! under the trail block while the Terraform is written, and its verified fix is one quick fix
//! away.
//!
//! It runs the same stages as the command line ([`crate::check_module_with`]) on the module
//! of each open `.tf` file, with the editor's unsaved text for the open files and the disk for
//! the others:
//! - diagnostics on every noncompliant or unknown trail (the range of `kms_key_id`, or of the
//!   block's header when it has none), code `cloudtrail-kms-cmk`; suppressed and compliant
//!   trails get none; a file that does not parse gets one at the parser's position;
//! - a `quickfix` code action per fixable trail whose edit is exactly what `ctfix --apply`
//!   (safe fixes) or `ctfix --apply --unsafe-fixes` (unsafe fixes) writes for the module;
//!   none is offered while a change waits to be judged, so none is stale, and each carries
//!   the open documents' versions so that a client applying it after a later change
//!   refuses it;
//! - hover over a diagnostic's range shows `ctfix --explain`.
//!
//! It judges as `ctfix` run at the repository's top does: the module's `.ctfix.toml` applies
//! (its `exclude` too; one that cannot be read offers no fix and says why), directories the
//! walk skips (`.terraform/`, hidden ones) are not judged, and a module that others call is
//! judged through its callers, its fix made at the call (the caller shows it at its `module`
//! block). A judgement is redone once a file of its directory or its configuration changes on
//! disk; file watchers are registered where the client takes them.
//!
//! Judging is debounced: a change marks its module dirty, and the module is judged once no
//! change has come for [`DEFAULT_DEBOUNCE`] (`initializationOptions.debounceMs` overrides it).
//! Only modules with an open file are judged; nothing is judged at start-up.
//!
//! A panic while handling a request becomes an error response, and one while handling a
//! notification a log message: the server keeps running.
//!
//! Nothing here prints: the protocol writer of `lsp-server` owns standard output.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use lsp_server::{Connection, ErrorCode, Message, Notification, Request, RequestId, Response};
use lsp_types::notification::Notification as _;
use lsp_types::request::Request as _;
use lsp_types::{
    CodeAction, CodeActionKind, CodeActionOptions, CodeActionOrCommand,
    CodeActionProviderCapability, CodeDescription, Diagnostic, DiagnosticSeverity,
    DidChangeTextDocumentParams, DidChangeWatchedFilesParams, DidCloseTextDocumentParams,
    DidOpenTextDocumentParams, DidSaveTextDocumentParams, DocumentChanges, Hover, HoverContents,
    HoverParams, HoverProviderCapability, InitializeResult, LogMessageParams, MarkupContent,
    MarkupKind, MessageType, NumberOrString, OneOf, OptionalVersionedTextDocumentIdentifier,
    Position, PositionEncodingKind, PublishDiagnosticsParams, Range, SaveOptions,
    ServerCapabilities, ServerInfo, ShowMessageParams, TextDocumentEdit,
    TextDocumentSyncCapability, TextDocumentSyncKind, TextDocumentSyncOptions,
    TextDocumentSyncSaveOptions, TextEdit, Uri, WorkspaceEdit,
};

use crate::calls;
use crate::discover::{file_kind, FileKind, ModuleDir};
use crate::model::{Applicability, FileChange, FileError, Finding, Report, Status, RULE_ID};
use crate::module::Overlay;
use crate::parse::{parse_source, SourceFile, BOM};
use crate::Settings;

/// How long a module must go without changes before it is judged: long enough to skip the
/// keystrokes of a word, short enough to feel immediate.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(100);

/// Where a diagnostic's code links to: AWS's description of the control (Security Hub
/// CloudTrail.2). Hover shows `ctfix --explain`.
const CONTROL_URL: &str =
    "https://docs.aws.amazon.com/securityhub/latest/userguide/cloudtrail-controls.html#cloudtrail-2";

/// The files whose change on disk may change a judgement.
const WATCHED: [&str; 5] = [
    "**/*.tf",
    "**/*.tf.json",
    "**/*.tfvars",
    "**/*.tfvars.json",
    "**/.ctfix.toml",
];

/// The largest message body read: a file ctfix parses is at most 16 MiB, and its text may be
/// escaped in JSON; a larger (or garbage) Content-Length is broken framing, not an allocation.
const MAX_MESSAGE: usize = 256 << 20;

/// The name diagnostics carry as their source.
const SOURCE: &str = "ctfix";

/// Runs the server on standard input/output until the client shuts it down.
///
/// The reader is ctfix's own rather than `lsp-server`'s, which ends the connection on the
/// first body that is not a message: here a body that is not JSON (or not UTF-8) is answered
/// `-32700 Parse error` and one that is JSON but not a message `-32600 Invalid Request`, as
/// JSON-RPC 2.0 says, and the server goes on. Only broken framing (the next message cannot
/// be found) ends it.
pub fn serve_stdio() -> anyhow::Result<()> {
    let (writer_sender, writer_receiver) = crossbeam_channel::unbounded::<Message>();
    let (reader_sender, reader_receiver) = crossbeam_channel::unbounded::<Message>();
    let writer = std::thread::Builder::new()
        .name("ctfix-lsp-writer".to_owned())
        .spawn(move || -> std::io::Result<()> {
            let stdout = std::io::stdout();
            for message in writer_receiver {
                message.write(&mut stdout.lock())?;
            }
            Ok(())
        })
        .context("cannot start the protocol writer")?;
    let framing_error = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let reader_error = framing_error.clone();
    std::thread::Builder::new()
        .name("ctfix-lsp-reader".to_owned())
        .spawn(move || {
            let stdin = std::io::stdin();
            let outcome = read_messages(&mut stdin.lock(), &reader_sender, &mut |text| {
                write_frame(&mut std::io::stdout().lock(), text)
            });
            if let Err(error) = outcome {
                *reader_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.to_string());
            }
            // Dropping the sender tells the server the input has ended.
        })
        .context("cannot start the protocol reader")?;
    let connection = Connection {
        sender: writer_sender,
        receiver: reader_receiver,
    };
    let result = serve(&connection);
    drop(connection);
    // Everything answered is written before the process ends. The reader may still wait on
    // standard input; the process ending stops it.
    writer
        .join()
        .map_err(|_| anyhow!("the protocol writer panicked"))?
        .context("cannot write to the client")?;
    let framing_error = framing_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    match (result, framing_error) {
        (Err(_), Some(error)) => Err(anyhow!(
            "the client's input cannot be read any further: {error}"
        )),
        (result, _) => result,
    }
}

/// Reads framed messages until the input ends (`Ok`) or its framing breaks (`Err`), passing
/// each message on and answering a body that is not one through `answer` (raw JSON text: its
/// `id` may be null, which a [`Response`] cannot say).
fn read_messages(
    input: &mut impl std::io::BufRead,
    messages: &crossbeam_channel::Sender<Message>,
    answer: &mut dyn FnMut(&str) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::io::{Error, ErrorKind};
    loop {
        let mut length = None;
        let mut headers = 0;
        let mut header = Vec::new();
        loop {
            header.clear();
            if input.read_until(b'\n', &mut header)? == 0 {
                return Ok(());
            }
            let line = String::from_utf8_lossy(&header);
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if length.is_some() {
                    break;
                }
                if headers > 0 {
                    return Err(Error::new(ErrorKind::InvalidData, "no Content-Length"));
                }
                continue; // a stray blank line between messages
            }
            headers += 1;
            let Some((name, value)) = line.split_once(':') else {
                return Err(Error::new(
                    ErrorKind::InvalidData,
                    format!("malformed header {line:?}"),
                ));
            };
            if name.trim().eq_ignore_ascii_case("Content-Length") {
                length = Some(value.trim().parse::<usize>().map_err(|_| {
                    Error::new(
                        ErrorKind::InvalidData,
                        format!("bad Content-Length {:?}", value.trim()),
                    )
                })?);
            }
        }
        let length = length.unwrap_or_default();
        if length > MAX_MESSAGE {
            return Err(Error::new(
                ErrorKind::InvalidData,
                format!(
                    "Content-Length {length} is over the {MAX_MESSAGE} bytes a message may have"
                ),
            ));
        }
        let mut body = vec![0; length];
        input.read_exact(&mut body)?;
        match message_of(&body) {
            Ok(message) => {
                let is_exit = matches!(&message, Message::Notification(n) if n.method == lsp_types::notification::Exit::METHOD);
                if messages.send(message).is_err() || is_exit {
                    return Ok(());
                }
            }
            Err(error) => answer(&error.to_string())?,
        }
    }
}

/// The message a body holds, or the JSON-RPC error response that answers it.
fn message_of(body: &[u8]) -> Result<Message, serde_json::Value> {
    let error = |id: serde_json::Value, code: ErrorCode, message: String| {
        serde_json::json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": {"code": code as i32, "message": message},
        })
    };
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        error(
            serde_json::Value::Null,
            ErrorCode::ParseError,
            format!("ctfix: not JSON (UTF-8): {e}"),
        )
    })?;
    // The request's id when it has a valid one, so the client can match the answer.
    let id = value
        .get("id")
        .filter(|id| id.is_number() || id.is_string())
        .cloned()
        .unwrap_or_default();
    let is_message = value
        .get("method")
        .is_some_and(serde_json::Value::is_string)
        || (value.get("id").is_some()
            && (value.get("result").is_some() || value.get("error").is_some()));
    if !is_message {
        return Err(error(
            id,
            ErrorCode::InvalidRequest,
            "ctfix: not a JSON-RPC request, notification or response".to_owned(),
        ));
    }
    serde_json::from_value(value).map_err(|e| {
        error(
            id,
            ErrorCode::InvalidRequest,
            format!("ctfix: not a valid JSON-RPC message: {e}"),
        )
    })
}

/// Writes one message body with its header, at once.
fn write_frame(output: &mut impl std::io::Write, text: &str) -> std::io::Result<()> {
    write!(output, "Content-Length: {}\r\n\r\n{text}", text.len())?;
    output.flush()
}

/// Runs the server on a connection: initialize, then messages until `shutdown` and `exit`.
/// An `exit` without `shutdown` first is an error (the protocol's exit code 1).
pub fn serve(connection: &Connection) -> anyhow::Result<()> {
    let (id, params) = connection
        .initialize_start()
        .context("no initialize request")?;
    let mut server = Server::new(connection.sender.clone(), &params);
    let result = InitializeResult {
        capabilities: server.capabilities(),
        server_info: Some(ServerInfo {
            name: "ctfix".to_owned(),
            version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        }),
    };
    connection
        .initialize_finish(id, serde_json::to_value(result)?)
        .context("initialize failed")?;
    server.watch_files();
    // After `shutdown`, only `exit` is acted on (a client may still send notifications).
    let mut shut_down = false;
    loop {
        // Before reading: a steady stream of messages must not hold back a due module.
        if !shut_down {
            server.judge_due();
        }
        let message = match server.next_deadline() {
            Some(deadline) => match connection
                .receiver
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(message) => Some(message),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    return Err(anyhow!("the client closed the connection without exit"))
                }
            },
            None => match connection.receiver.recv() {
                Ok(message) => Some(message),
                Err(_) => return Err(anyhow!("the client closed the connection without exit")),
            },
        };
        match message {
            None => {}
            Some(Message::Request(request)) => {
                if request.method == lsp_types::request::Shutdown::METHOD {
                    shut_down = true;
                    server.send(Message::Response(Response::new_ok(request.id, ())));
                    continue;
                }
                if shut_down {
                    server.send(Message::Response(Response::new_err(
                        request.id,
                        ErrorCode::InvalidRequest as i32,
                        "ctfix lsp is shutting down".to_owned(),
                    )));
                    continue;
                }
                let response = respond_catching(request.id.clone(), &request.method, || {
                    server.handle_request(&request)
                });
                server.send(Message::Response(response));
            }
            Some(Message::Notification(notification)) => {
                if notification.method == lsp_types::notification::Exit::METHOD {
                    return match shut_down {
                        true => Ok(()),
                        false => Err(anyhow!("exit before shutdown")),
                    };
                }
                if shut_down {
                    continue;
                }
                let method = notification.method.clone();
                let outcome = catch_unwind(AssertUnwindSafe(|| {
                    server.handle_notification(notification)
                }));
                let failure = match outcome {
                    Ok(Ok(())) => None,
                    Ok(Err(error)) => Some(format!("{error:#}")),
                    Err(panic) => Some(format!("internal error: {}", panic_message(&*panic))),
                };
                if let Some(failure) = failure {
                    server.log(MessageType::ERROR, format!("ctfix: {method}: {failure}"));
                }
            }
            Some(Message::Response(_)) => {}
        }
    }
}

/// Runs a request handler; its error, or its panic, becomes an error response so that one
/// bad request never ends the server.
fn respond_catching(
    id: RequestId,
    method: &str,
    handle: impl FnOnce() -> Result<serde_json::Value, RequestError>,
) -> Response {
    match catch_unwind(AssertUnwindSafe(handle)) {
        Ok(Ok(value)) => Response::new_ok(id, value),
        Ok(Err(RequestError::Unknown)) => Response::new_err(
            id,
            ErrorCode::MethodNotFound as i32,
            format!("ctfix does not handle {method}"),
        ),
        Ok(Err(RequestError::Invalid(error))) => Response::new_err(
            id,
            ErrorCode::InvalidParams as i32,
            format!("{method}: {error:#}"),
        ),
        Err(panic) => Response::new_err(
            id,
            ErrorCode::InternalError as i32,
            format!(
                "ctfix: internal error handling {method} (please report this): {}",
                panic_message(&*panic)
            ),
        ),
    }
}

/// The part of a code action request ctfix reads. The context's diagnostics are not read:
/// actions come from the current judgement, and a client that sends them malformed (Neovim
/// 0.7 can) still gets its fixes.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct CodeActionWhere {
    text_document: lsp_types::TextDocumentIdentifier,
    range: Range,
}

/// Why a request got no result.
enum RequestError {
    /// A method the server does not implement.
    Unknown,
    /// Parameters that could not be read.
    Invalid(anyhow::Error),
}

impl From<serde_json::Error> for RequestError {
    fn from(error: serde_json::Error) -> Self {
        RequestError::Invalid(error.into())
    }
}

/// The text of a panic's payload.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
}

/// How positions count characters within a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    /// UTF-8 code units (bytes), when the client offers it.
    Utf8,
    /// UTF-16 code units: the protocol's default.
    Utf16,
}

/// An open document.
#[derive(Debug)]
struct Document {
    /// The URI as the client spells it (published diagnostics use it).
    uri: Uri,
    /// The client's version of the text.
    version: i32,
    /// The editor's text, unsaved changes included.
    text: String,
}

/// What the last judgement of a module found.
#[derive(Debug, Default)]
struct Judged {
    /// The report, with safe fixes selected as `--apply` selects them.
    report: Report,
    /// The diagnostic of each of the report's findings (none for a compliant or suppressed
    /// trail), worked out once: code actions and hover look them up.
    diagnostics: Vec<Option<Diagnostic>>,
    /// The report with unsafe fixes selected, once a code action needed it.
    unsafe_report: Option<Report>,
    /// Files that were given diagnostics, to clear them once they have none.
    published: BTreeSet<PathBuf>,
    /// The module's files on disk and its configuration as they were judged.
    inputs: Inputs,
}

/// Each Terraform file of a module's directory (`.tf`, `.tf.json`, `.tfvars`), and the
/// `.ctfix.toml` that governs it, with its size and modification time: a judgement is stale
/// once these differ.
type Inputs = BTreeMap<PathBuf, Option<(u64, std::time::SystemTime)>>;

/// The [`Inputs`] of the module in `dir`, as the disk has them now.
fn disk_inputs(dir: &Path) -> Inputs {
    let stamp = |path: &Path| {
        let metadata = std::fs::metadata(path).ok()?;
        Some((metadata.len(), metadata.modified().ok()?))
    };
    let mut inputs = Inputs::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            // Terraform's own files only: an editor's swap or backup file changes as it types.
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let read = [".tf", ".tf.json", ".tfvars", ".tfvars.json"]
                .iter()
                .any(|suffix| name.ends_with(suffix));
            if read && entry.file_type().is_ok_and(|t| !t.is_dir()) {
                inputs.insert(path.clone(), stamp(&path));
            }
        }
    }
    if let Some(config) = crate::config::find(dir) {
        inputs.insert(config.clone(), stamp(&config));
    }
    inputs
}

/// The diagnostic an open file gets while its `.ctfix.toml` cannot be read: no fix is
/// offered, as `ctfix` refuses to run with it.
fn config_diagnostic(error: &FileError) -> Diagnostic {
    Diagnostic {
        range: Range::default(),
        severity: Some(DiagnosticSeverity::ERROR),
        source: Some(SOURCE.to_owned()),
        message: format!(
            "{error}\nctfix judges nothing and offers no fix here until the configuration is \
             fixed (the command line refuses to run with it)"
        ),
        ..Diagnostic::default()
    }
}

/// The server's state: open documents, modules waiting to be judged, and what was found.
struct Server {
    sender: crossbeam_channel::Sender<Message>,
    encoding: Encoding,
    /// Whether the client takes versioned `documentChanges` in a workspace edit.
    document_changes: bool,
    /// Whether the client takes file watchers registered at run time.
    registers_watchers: bool,
    /// The workspace's folders: a hidden directory below one is skipped, as the walk does.
    folders: Vec<PathBuf>,
    debounce: Duration,
    documents: HashMap<PathBuf, Document>,
    /// The last configuration error shown to the user (each new one is shown once).
    config_error: Option<String>,
    /// Per repository top (or workspace folder): its directories that may call modules,
    /// with their `source` lines, found by the command line's walk and byte search. Kept
    /// until a file is saved or changes on disk.
    callers: HashMap<PathBuf, Callers>,
    /// Modules to judge, with the time at which they may be.
    dirty: BTreeMap<PathBuf, Instant>,
    judged: HashMap<PathBuf, Judged>,
}

impl Server {
    /// A server for the client `params` (the `initialize` request's) describes. The few
    /// fields used are read from the JSON one by one: a value this version of `lsp-types`
    /// does not know (a newer protocol's, or a client's typo) costs nothing else.
    fn new(sender: crossbeam_channel::Sender<Message>, params: &serde_json::Value) -> Server {
        let offers_utf8 = params
            .pointer("/capabilities/general/positionEncodings")
            .and_then(serde_json::Value::as_array)
            .is_some_and(|encodings| {
                encodings
                    .iter()
                    .any(|e| e.as_str() == Some(PositionEncodingKind::UTF8.as_str()))
            });
        let flag = |pointer: &str| {
            params
                .pointer(pointer)
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false)
        };
        let debounce = params
            .pointer("/initializationOptions/debounceMs")
            .and_then(serde_json::Value::as_u64)
            .map_or(DEFAULT_DEBOUNCE, Duration::from_millis);
        let folders = params
            .get("workspaceFolders")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|folder| folder.get("uri"))
            .chain(params.get("rootUri"))
            .filter_map(serde_json::Value::as_str)
            .filter_map(|uri| Uri::from_str(uri).ok())
            .filter_map(|uri| local_path(&uri))
            .collect();
        Server {
            sender,
            encoding: if offers_utf8 {
                Encoding::Utf8
            } else {
                Encoding::Utf16
            },
            document_changes: flag("/capabilities/workspace/workspaceEdit/documentChanges"),
            registers_watchers: flag(
                "/capabilities/workspace/didChangeWatchedFiles/dynamicRegistration",
            ),
            folders,
            debounce,
            documents: HashMap::new(),
            config_error: None,
            callers: HashMap::new(),
            dirty: BTreeMap::new(),
            judged: HashMap::new(),
        }
    }

    /// Asks the client to tell of changes on disk to the files a judgement reads (a `git
    /// pull`, a branch switch, an edit in a terminal): clients send
    /// `workspace/didChangeWatchedFiles` only for registered watchers.
    fn watch_files(&self) {
        if !self.registers_watchers {
            return;
        }
        let watchers: Vec<serde_json::Value> = WATCHED
            .iter()
            .map(|glob| serde_json::json!({ "globPattern": glob }))
            .collect();
        self.send(Message::Request(Request::new(
            RequestId::from("ctfix/watch-files".to_owned()),
            lsp_types::request::RegisterCapability::METHOD.to_owned(),
            serde_json::json!({
                "registrations": [{
                    "id": "ctfix/watch-files",
                    "method": lsp_types::notification::DidChangeWatchedFiles::METHOD,
                    "registerOptions": { "watchers": watchers },
                }],
            }),
        )));
    }

    fn capabilities(&self) -> ServerCapabilities {
        ServerCapabilities {
            position_encoding: Some(match self.encoding {
                Encoding::Utf8 => PositionEncodingKind::UTF8,
                Encoding::Utf16 => PositionEncodingKind::UTF16,
            }),
            text_document_sync: Some(TextDocumentSyncCapability::Options(
                TextDocumentSyncOptions {
                    open_close: Some(true),
                    change: Some(TextDocumentSyncKind::FULL),
                    save: Some(TextDocumentSyncSaveOptions::SaveOptions(SaveOptions {
                        include_text: Some(false),
                    })),
                    ..TextDocumentSyncOptions::default()
                },
            )),
            code_action_provider: Some(CodeActionProviderCapability::Options(CodeActionOptions {
                code_action_kinds: Some(vec![CodeActionKind::QUICKFIX]),
                ..CodeActionOptions::default()
            })),
            hover_provider: Some(HoverProviderCapability::Simple(true)),
            ..ServerCapabilities::default()
        }
    }

    fn send(&self, message: Message) {
        // The writer thread is gone only when the client is; the loop then ends on its own.
        let _ = self.sender.send(message);
    }

    fn notify<N: lsp_types::notification::Notification>(&self, params: N::Params) {
        self.send(Message::Notification(Notification::new(
            N::METHOD.to_owned(),
            params,
        )));
    }

    fn log(&self, typ: MessageType, message: String) {
        self.notify::<lsp_types::notification::LogMessage>(LogMessageParams { typ, message });
    }

    /// The earliest time a dirty module may be judged.
    fn next_deadline(&self) -> Option<Instant> {
        self.dirty.values().min().copied()
    }

    /// Marks the module of `path` to be judged after the quiet period.
    fn touch(&mut self, path: &Path) {
        if let Some(dir) = path.parent() {
            self.dirty
                .insert(dir.to_path_buf(), Instant::now() + self.debounce);
        }
    }

    /// Marks every module under a `.ctfix.toml`'s directory that is open or judged: the
    /// configuration shapes their fixes.
    fn touch_configured(&mut self, config: &Path) {
        let Some(base) = config.parent() else {
            return;
        };
        let dirs: BTreeSet<PathBuf> = self
            .judged
            .keys()
            .cloned()
            .chain(
                self.documents
                    .keys()
                    .filter_map(|p| p.parent().map(Path::to_path_buf)),
            )
            .filter(|dir| dir.starts_with(base))
            .collect();
        let when = Instant::now() + self.debounce;
        for dir in dirs {
            self.dirty.insert(dir, when);
        }
    }

    /// Whether a file of the module in `dir` is open (only those modules are judged).
    fn is_open(&self, dir: &Path) -> bool {
        self.documents.keys().any(|p| p.parent() == Some(dir))
    }

    /// Keeps the open documents and marks the modules to judge. Documents that are not local
    /// files (an editor's `untitled:` buffer) are left alone, quietly.
    fn handle_notification(&mut self, notification: Notification) -> anyhow::Result<()> {
        use lsp_types::notification::{
            DidChangeTextDocument, DidChangeWatchedFiles, DidCloseTextDocument,
            DidOpenTextDocument, DidSaveTextDocument,
        };
        match notification.method.as_str() {
            DidOpenTextDocument::METHOD => {
                let params: DidOpenTextDocumentParams =
                    serde_json::from_value(notification.params)?;
                let Some(path) = local_path(&params.text_document.uri) else {
                    return Ok(());
                };
                if file_kind(&path) != Some(FileKind::Native) {
                    return Ok(());
                }
                self.documents.insert(
                    path.clone(),
                    Document {
                        uri: params.text_document.uri,
                        version: params.text_document.version,
                        text: params.text_document.text,
                    },
                );
                // Opening is not typing: judge at once.
                if let Some(dir) = path.parent() {
                    self.dirty.insert(dir.to_path_buf(), Instant::now());
                }
            }
            DidChangeTextDocument::METHOD => {
                let params: DidChangeTextDocumentParams =
                    serde_json::from_value(notification.params)?;
                let Some(path) = local_path(&params.text_document.uri) else {
                    return Ok(());
                };
                let encoding = self.encoding;
                let Some(document) = self.documents.get_mut(&path) else {
                    return Ok(());
                };
                for change in params.content_changes {
                    match change.range {
                        None => document.text = change.text,
                        Some(range) => {
                            let start = offset_of(&document.text, range.start, encoding);
                            let end = offset_of(&document.text, range.end, encoding).max(start);
                            document.text.replace_range(start..end, &change.text);
                        }
                    }
                }
                document.version = params.text_document.version;
                self.touch(&path);
            }
            DidSaveTextDocument::METHOD => {
                let params: DidSaveTextDocumentParams =
                    serde_json::from_value(notification.params)?;
                let Some(path) = local_path(&params.text_document.uri) else {
                    return Ok(());
                };
                self.touch_saved(&path);
            }
            DidCloseTextDocument::METHOD => {
                let params: DidCloseTextDocumentParams =
                    serde_json::from_value(notification.params)?;
                let Some(path) = local_path(&params.text_document.uri) else {
                    return Ok(());
                };
                if self.documents.remove(&path).is_none() {
                    return Ok(());
                }
                let Some(dir) = path.parent() else {
                    return Ok(());
                };
                if self.is_open(dir) {
                    // The file's unsaved text is gone: judge the disk's.
                    self.touch(&path);
                } else {
                    // No file of the module is open any more: forget it.
                    self.dirty.remove(dir);
                    if let Some(judged) = self.judged.remove(dir) {
                        for path in judged.published {
                            self.publish(&path, Vec::new());
                        }
                    }
                }
            }
            DidChangeWatchedFiles::METHOD => {
                let params: DidChangeWatchedFilesParams =
                    serde_json::from_value(notification.params)?;
                for change in params.changes {
                    if let Some(path) = local_path(&change.uri) {
                        self.touch_saved(&path);
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Marks what a file written to disk may change: the modules a `.ctfix.toml` governs,
    /// or the file's module when it is open (others are not judged).
    fn touch_saved(&mut self, path: &Path) {
        // A module call may have come or gone.
        let mut calls_changed = Vec::new();
        if let Some(dir) = path.parent() {
            let skipped = self.is_skipped(dir);
            for (top, tree) in &mut self.callers {
                if dir.starts_with(top) {
                    let before = (tree.called.clone(), tree.by_dir.len());
                    std::sync::Arc::make_mut(tree).rescan(dir, skipped);
                    if before != (tree.called.clone(), tree.by_dir.len()) {
                        calls_changed.push(top.clone());
                    }
                }
            }
        }
        // A call came or went: every judged module of that tree may be judged otherwise.
        let when = Instant::now() + self.debounce;
        let affected: Vec<PathBuf> = self
            .judged
            .keys()
            .filter(|dir| calls_changed.iter().any(|top| dir.starts_with(top)))
            .cloned()
            .collect();
        for dir in affected {
            self.dirty.insert(dir, when);
        }
        // Modules judged through module calls read other directories' files.
        let through: Vec<PathBuf> = self
            .judged
            .iter()
            .filter(|(_, judged)| judged.report.findings.iter().any(|f| !f.via.is_empty()))
            .map(|(dir, _)| dir.clone())
            .collect();
        let when = Instant::now() + self.debounce;
        for dir in through {
            self.dirty.insert(dir, when);
        }
        if path.file_name() == Some(std::ffi::OsStr::new(crate::config::FILE_NAME)) {
            self.touch_configured(path);
        } else if path
            .parent()
            .is_some_and(|dir| self.is_open(dir) || self.judged.contains_key(dir))
        {
            self.touch(path);
        }
    }

    /// Answers code-action and hover requests.
    fn handle_request(&mut self, request: &Request) -> Result<serde_json::Value, RequestError> {
        use lsp_types::request::{CodeActionRequest, HoverRequest};
        match request.method.as_str() {
            CodeActionRequest::METHOD => {
                let params: CodeActionWhere = serde_json::from_value(request.params.clone())?;
                Ok(serde_json::to_value(self.code_actions(&params))?)
            }
            HoverRequest::METHOD => {
                let params: HoverParams = serde_json::from_value(request.params.clone())?;
                Ok(serde_json::to_value(self.hover(&params))?)
            }
            _ => Err(RequestError::Unknown),
        }
    }

    /// Judges every dirty module whose quiet period is over.
    fn judge_due(&mut self) {
        let now = Instant::now();
        let due: Vec<PathBuf> = self
            .dirty
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(dir, _)| dir.clone())
            .collect();
        for dir in due {
            self.dirty.remove(&dir);
            self.judge(&dir);
        }
    }

    /// The open documents of a directory's module, as text standing in for the disk's.
    fn overlay(&self, dir: &Path) -> Overlay {
        self.documents
            .iter()
            .filter(|(path, _)| path.parent() == Some(dir))
            .map(|(path, document)| (path.clone(), document.text.clone()))
            .collect()
    }

    /// The current text of a file: the editor's when it is open, else the disk's.
    fn current_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        match self.documents.get(path) {
            Some(document) => Some(document.text.clone().into_bytes()),
            None => std::fs::read(path).ok(),
        }
    }

    /// Whether `dir` lies in a directory the command line's walk skips: `.terraform/`
    /// anywhere (downloaded module copies, which `terraform init` overwrites), or a hidden
    /// directory below the repository's top or a workspace folder.
    fn is_skipped(&self, dir: &Path) -> bool {
        let mut hidden = false;
        for ancestor in dir.ancestors() {
            if self.folders.iter().any(|folder| folder == ancestor)
                || ancestor.join(".git").exists()
            {
                return hidden;
            }
            let Some(name) = ancestor.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name == ".terraform" {
                return true;
            }
            hidden |= name.starts_with('.');
        }
        false
    }

    /// Runs ctfix on a module with the open documents' text, configured by its
    /// `.ctfix.toml` as `ctfix` run there is: files it excludes, and modules in skipped
    /// directories, are not judged (an empty report). A configuration that cannot be read is
    /// the error, as it is the command line's.
    ///
    /// A module that other modules of the workspace call (and that is not applied on its
    /// own) is judged through its callers, as `ctfix` run from the top judges it: its trails
    /// by the values the callers pass, fixed at the call.
    fn check(
        &self,
        dir: &Path,
        min_applicability: Applicability,
        callers: &Callers,
    ) -> Result<Report, FileError> {
        if self.is_skipped(dir) {
            return Ok(Report::default());
        }
        let config = match crate::config::find(dir) {
            Some(path) => crate::config::load(&path)?,
            None => crate::config::Config::default(),
        };
        let overlay = self.overlay(dir);
        let mut module = list_module(dir, &overlay);
        let exclude = config.exclusions();
        if let Some(exclude) = &exclude {
            let excluded = exclude.matcher();
            module.targets.retain(|path| !excluded(path));
            if module.targets.is_empty() {
                return Ok(Report::default());
            }
        }
        let settings = Settings {
            paths: vec![dir.to_path_buf()],
            min_applicability,
            key: config.key.clone(),
            exclude,
        };
        let own = crate::check_module_with(&module, &settings, &overlay);
        if is_called(dir, callers) && !calls::applied_on_its_own(dir) {
            if own.findings.is_empty() {
                return Ok(own);
            }
            return Ok(through_callers(dir, own, callers, &settings));
        }
        Ok(through_calls(dir, own, callers, &settings))
    }

    /// The candidate callers under the top of `dir` (found once, then kept).
    fn callers_of(&mut self, dir: &Path) -> Callers {
        let Some(top) = self.top_of(dir) else {
            return Callers::default();
        };
        self.callers
            .entry(top.clone())
            .or_insert_with(|| find_callers(&top))
            .clone()
    }

    /// Where a module's callers are looked for: the repository's top, else the workspace
    /// folder holding it; none outside both.
    fn top_of(&self, dir: &Path) -> Option<PathBuf> {
        dir.ancestors()
            .find(|ancestor| ancestor.join(".git").exists())
            .map(Path::to_path_buf)
            .or_else(|| {
                self.folders
                    .iter()
                    .filter(|folder| dir.starts_with(folder))
                    .max_by_key(|folder| folder.as_os_str().len())
                    .cloned()
            })
    }

    /// Judges a module and publishes its diagnostics (clearing files that have none left).
    fn judge(&mut self, dir: &Path) {
        let inputs = disk_inputs(dir);
        let callers = self.callers_of(dir);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            self.check(dir, Applicability::Safe, &callers)
        }));
        let (report, config_error) = match outcome {
            Ok(Ok(report)) => (report, None),
            Ok(Err(error)) => (Report::default(), Some(error)),
            Err(panic) => {
                self.log(
                    MessageType::ERROR,
                    format!(
                        "ctfix: internal error judging {} (please report this): {}",
                        dir.display(),
                        panic_message(&*panic)
                    ),
                );
                return;
            }
        };
        let mut by_file: BTreeMap<PathBuf, Vec<Diagnostic>> = BTreeMap::new();
        let mut texts: HashMap<PathBuf, Option<JudgedText>> = HashMap::new();
        let diagnostics: Vec<Option<Diagnostic>> = report
            .findings
            .iter()
            .map(|finding| self.diagnostic(finding, &mut texts))
            .collect();
        for (finding, diagnostic) in report.findings.iter().zip(&diagnostics) {
            if let Some(diagnostic) = diagnostic {
                by_file
                    .entry(finding.path.clone())
                    .or_default()
                    .push(diagnostic.clone());
            }
        }
        for error in &report.errors {
            if file_kind(&error.path) != Some(FileKind::Native) {
                continue;
            }
            let diagnostic = self.error_diagnostic(error, &mut texts);
            by_file
                .entry(error.path.clone())
                .or_default()
                .push(diagnostic);
        }
        // Open files with nothing to say get an empty list: the client clears what it showed.
        for path in self.documents.keys().filter(|p| p.parent() == Some(dir)) {
            let diagnostics = by_file.entry(path.clone()).or_default();
            if let Some(error) = &config_error {
                diagnostics.push(config_diagnostic(error));
            }
        }
        if let Some(error) = &config_error {
            let message = format!("ctfix: {error}");
            if self.config_error.as_ref() != Some(&message) {
                self.notify::<lsp_types::notification::ShowMessage>(ShowMessageParams {
                    typ: MessageType::ERROR,
                    message: message.clone(),
                });
            }
            self.config_error = Some(message);
        } else {
            self.config_error = None;
        }
        let previous = self
            .judged
            .remove(dir)
            .map(|judged| judged.published)
            .unwrap_or_default();
        for path in previous.difference(&by_file.keys().cloned().collect()) {
            self.publish(path, Vec::new());
        }
        let published = by_file.keys().cloned().collect();
        for (path, diagnostics) in by_file {
            self.publish(&path, diagnostics);
        }
        self.judged.insert(
            dir.to_path_buf(),
            Judged {
                report,
                diagnostics,
                unsafe_report: None,
                published,
                inputs,
            },
        );
    }

    /// The URI to publish a file's diagnostics under: the client's own spelling when open.
    fn uri_of(&self, path: &Path) -> Option<Uri> {
        match self.documents.get(path) {
            Some(document) => Some(document.uri.clone()),
            None => uri_from_path(path),
        }
    }

    fn publish(&self, path: &Path, diagnostics: Vec<Diagnostic>) {
        let Some(uri) = self.uri_of(path) else {
            return;
        };
        let version = self.documents.get(path).map(|d| d.version);
        self.notify::<lsp_types::notification::PublishDiagnostics>(PublishDiagnosticsParams {
            uri,
            diagnostics,
            version,
        });
    }

    /// The text of a file as it was judged, parsed once per judgement.
    fn text_of<'a>(
        &self,
        path: &Path,
        texts: &'a mut HashMap<PathBuf, Option<JudgedText>>,
    ) -> Option<&'a JudgedText> {
        texts
            .entry(path.to_path_buf())
            .or_insert_with(|| {
                self.current_bytes(path)
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .map(|text| JudgedText::new(path, text))
            })
            .as_ref()
    }

    /// The diagnostic for a finding, if its trail is noncompliant or unknown.
    fn diagnostic(
        &self,
        finding: &Finding,
        texts: &mut HashMap<PathBuf, Option<JudgedText>>,
    ) -> Option<Diagnostic> {
        let severity = match finding.status {
            Status::Noncompliant => DiagnosticSeverity::WARNING,
            Status::Unknown => DiagnosticSeverity::INFORMATION,
            Status::Compliant | Status::Suppressed => return None,
        };
        let encoding = self.encoding;
        let text = self.text_of(&finding.path, texts)?;
        let range = trail_range(text, finding.line, finding.column, encoding);
        let mut message = format!(
            "{}: {} ({})",
            finding.resource, finding.message, finding.reason
        );
        if let Some(fix) = &finding.fix {
            let offered = match fix.applicability {
                Applicability::Safe => fix.selected,
                Applicability::Unsafe => true,
                Applicability::DisplayOnly => false,
            };
            if offered {
                message.push_str(&format!(
                    "\nquick fix ({}): {}",
                    fix.applicability.as_str(),
                    fix.title
                ));
            } else {
                message.push_str(&format!("\nto fix by hand: {}", fix.title));
            }
            if let Some(note) = &fix.note {
                message.push_str(&format!("\nnote: {note}"));
            }
        }
        Some(Diagnostic {
            range,
            severity: Some(severity),
            code: Some(NumberOrString::String(RULE_ID.to_owned())),
            code_description: Uri::from_str(CONTROL_URL)
                .ok()
                .map(|href| CodeDescription { href }),
            source: Some(SOURCE.to_owned()),
            message,
            data: Some(serde_json::json!({
                "resource": finding.resource,
                "status": finding.status.as_str(),
                "reason": finding.reason,
                "version": self.documents.get(&finding.path).map(|d| d.version),
            })),
            ..Diagnostic::default()
        })
    }

    /// The diagnostic for a file's error (a syntax error, at the parser's position).
    fn error_diagnostic(
        &self,
        error: &FileError,
        texts: &mut HashMap<PathBuf, Option<JudgedText>>,
    ) -> Diagnostic {
        let encoding = self.encoding;
        let range = match (error.line, error.column, self.text_of(&error.path, texts)) {
            (Some(line), Some(column), Some(judged)) => {
                // The parser's columns are counted after any BOM; the editor's text holds it.
                let (text, bom) = (&judged.text, judged.bom);
                let start = offset_of_line_col(&text[bom..], line, column);
                let end = line_end(&text[bom..], start);
                Range::new(
                    position_of(text, start + bom, encoding),
                    position_of(text, end + bom, encoding),
                )
            }
            _ => Range::default(),
        };
        // The parser's message is followed by a snippet with a caret: the editor shows the
        // place itself.
        let message = error.message.lines().next().unwrap_or_default().to_owned();
        Diagnostic {
            range,
            severity: Some(DiagnosticSeverity::ERROR),
            source: Some(SOURCE.to_owned()),
            message,
            ..Diagnostic::default()
        }
    }

    /// The judgement of a file's module that matches the current text, or `None` while a
    /// change waits for its quiet period, or when no file of the module is open: answers
    /// (fixes above all) never come from text older than the editor's. A module never
    /// judged, or one whose files on disk (or configuration) changed since, is judged now.
    fn current_judgement(&mut self, path: &Path) -> Option<&mut Judged> {
        let dir = path.parent()?.to_path_buf();
        if self.dirty.contains_key(&dir) || !self.is_open(&dir) {
            return None;
        }
        let stale =
            self.judged.get(&dir).is_none_or(|judged| {
                judged.inputs != disk_inputs(&dir)
                    || !judged.report.changes.iter().all(|change| {
                        self.current_bytes(&change.path).as_ref() == Some(&change.before)
                    })
            });
        if stale {
            self.judge(&dir);
        }
        self.judged.get_mut(&dir)
    }

    /// One quick fix per fixable trail whose diagnostic meets the range: the module's changes
    /// exactly as `ctfix --apply` (with `--unsafe-fixes` for an unsafe fix) writes them.
    fn code_actions(&mut self, params: &CodeActionWhere) -> Vec<CodeActionOrCommand> {
        let Some(path) = local_path(&params.text_document.uri) else {
            return Vec::new();
        };
        if file_kind(&path) != Some(FileKind::Native) {
            return Vec::new();
        }
        let encoding = self.encoding;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let Some(judged) = self.current_judgement(&path) else {
            return Vec::new();
        };
        // The trails the range meets, by their diagnostics of this judgement.
        let wanted: Vec<usize> = (0..judged.report.findings.len())
            .filter(|&i| {
                let finding = &judged.report.findings[i];
                finding.path == path
                    && finding
                        .fix
                        .as_ref()
                        .is_some_and(|fix| fix.applicability != Applicability::DisplayOnly)
                    && judged.diagnostics[i]
                        .as_ref()
                        .is_some_and(|d| overlaps(&d.range, &params.range))
            })
            .collect();
        let needs_unsafe = wanted.iter().any(|&i| {
            judged.report.findings[i]
                .fix
                .as_ref()
                .is_some_and(|fix| fix.applicability != Applicability::Safe)
        });
        if needs_unsafe && judged.unsafe_report.is_none() {
            // Judged once per judgement: the cursor moving about asks again and again.
            let callers = self.callers_of(&dir);
            let report = self
                .check(&dir, Applicability::Unsafe, &callers)
                .unwrap_or_default();
            if let Some(judged) = self.judged.get_mut(&dir) {
                judged.unsafe_report = Some(report);
            }
        }
        let Some(judged) = self.judged.get(&dir) else {
            return Vec::new();
        };
        let mut actions = Vec::new();
        for i in wanted {
            let finding = &judged.report.findings[i];
            let (Some(fix), Some(diagnostic)) = (&finding.fix, &judged.diagnostics[i]) else {
                continue;
            };
            let (report, command) = match fix.applicability {
                Applicability::Safe => (&judged.report, "ctfix --apply"),
                _ => match &judged.unsafe_report {
                    Some(report) => (report, "ctfix --apply --unsafe-fixes"),
                    None => continue,
                },
            };
            // The same trail in the run that selects its fix.
            let Some(selected) = report
                .findings
                .iter()
                .find(|f| f.resource == finding.resource && f.path == finding.path)
                .and_then(|f| f.fix.as_ref())
                .filter(|f| f.selected && f.applicability == fix.applicability)
            else {
                continue;
            };
            // Changes planned on the disk's text of a file the editor holds changed (a caller
            // with unsaved edits) would not apply to the editor's text.
            if report.changes.is_empty()
                || report
                    .changes
                    .iter()
                    .any(|change| self.current_bytes(&change.path).as_ref() != Some(&change.before))
            {
                continue;
            }
            let others = report
                .findings
                .iter()
                .filter(|f| f.resource != finding.resource || f.path != finding.path)
                .filter(|f| f.fix.as_ref().is_some_and(|fix| fix.selected))
                .count();
            let mut title = format!(
                "ctfix: {} ({} fix)",
                selected.title,
                selected.applicability.as_str()
            );
            if others > 0 {
                title.push_str(&format!(
                    "; also fixes {others} other trail{} of this module, as `{command}` does",
                    if others == 1 { "" } else { "s" }
                ));
            }
            let edit = self.workspace_edit(&report.changes, encoding);
            actions.push(CodeActionOrCommand::CodeAction(CodeAction {
                title,
                kind: Some(CodeActionKind::QUICKFIX),
                diagnostics: Some(vec![diagnostic.clone()]),
                edit: Some(edit),
                is_preferred: Some(selected.applicability == Applicability::Safe),
                ..CodeAction::default()
            }));
        }
        actions
    }

    /// The edits that turn each change's `before` into its `after`, by line hunks, with the
    /// open documents' versions (a client refuses the edit once a document has moved on).
    fn workspace_edit(&self, changes: &[FileChange], encoding: Encoding) -> WorkspaceEdit {
        let mut per_file = Vec::new();
        for change in changes {
            let (Ok(before), Ok(after)) = (
                std::str::from_utf8(&change.before),
                std::str::from_utf8(&change.after),
            ) else {
                continue;
            };
            let Some(uri) = self.uri_of(&change.path) else {
                continue;
            };
            let version = self.documents.get(&change.path).map(|d| d.version);
            per_file.push((uri, version, text_edits(before, after, encoding)));
        }
        if self.document_changes {
            WorkspaceEdit {
                document_changes: Some(DocumentChanges::Edits(
                    per_file
                        .into_iter()
                        .map(|(uri, version, edits)| TextDocumentEdit {
                            text_document: OptionalVersionedTextDocumentIdentifier { uri, version },
                            edits: edits.into_iter().map(OneOf::Left).collect(),
                        })
                        .collect(),
                )),
                ..WorkspaceEdit::default()
            }
        } else {
            WorkspaceEdit {
                changes: Some(
                    per_file
                        .into_iter()
                        .map(|(uri, _, edits)| (uri, edits))
                        .collect(),
                ),
                ..WorkspaceEdit::default()
            }
        }
    }

    /// `ctfix --explain` over a trail's diagnostic, with the verdict.
    fn hover(&mut self, params: &HoverParams) -> Option<Hover> {
        let document = &params.text_document_position_params;
        let path = local_path(&document.text_document.uri)?;
        if file_kind(&path) != Some(FileKind::Native) {
            return None;
        }
        let position = document.position;
        let judged = self.current_judgement(&path)?;
        let (finding, diagnostic) = judged
            .report
            .findings
            .iter()
            .zip(&judged.diagnostics)
            .filter(|(finding, _)| finding.path == path)
            .filter_map(|(finding, diagnostic)| Some((finding, diagnostic.as_ref()?)))
            .find(|(_, diagnostic)| contains(&diagnostic.range, position))?;
        Some(Hover {
            contents: HoverContents::Markup(MarkupContent {
                kind: MarkupKind::Markdown,
                value: format!(
                    "**{}** ({}, `{}`): {}\n\n```text\n{}```",
                    finding.resource,
                    finding.status.as_str(),
                    finding.reason,
                    finding.message,
                    crate::explain::CONTROL
                ),
            }),
            range: Some(diagnostic.range),
        })
    }
}

/// What the command line's walk finds under a repository's top that module calls need.
#[derive(Debug, Default, Clone)]
struct Tree {
    /// The directories that may call modules, with their `source` lines.
    callers: Vec<(ModuleDir, Vec<String>)>,
    /// The directories whose files mention `aws_cloudtrail`.
    trail_dirs: Vec<PathBuf>,
    /// Each caller's index in `callers`, by its canonical directory.
    by_dir: HashMap<PathBuf, usize>,
    /// The canonical directories the callers' local sources lead to.
    called: BTreeSet<PathBuf>,
}

/// A [`Tree`], shared by the judgements of its modules.
type Callers = std::sync::Arc<Tree>;

/// The [`Tree`] under `top`: the command line's walk (hidden directories skipped) and its
/// byte searches for `aws_cloudtrail`, `module` and `source`.
fn find_callers(top: &Path) -> Callers {
    let found = std::sync::Mutex::new(Tree::default());
    crate::discover::visit_modules(&[top.to_path_buf()], &|module: ModuleDir| {
        let mut found = found.lock().unwrap_or_else(|p| p.into_inner());
        found.add(module);
    });
    let mut found = found.into_inner().unwrap_or_else(|p| p.into_inner());
    found.index();
    std::sync::Arc::new(found)
}

impl Tree {
    /// Adds a directory of the walk, if it mentions a trail or may call modules.
    fn add(&mut self, module: ModuleDir) {
        static FINDER: std::sync::OnceLock<memchr::memmem::Finder<'static>> =
            std::sync::OnceLock::new();
        let finder = FINDER.get_or_init(|| memchr::memmem::Finder::new(crate::TRAIL_MARKER));
        let mut scan = calls::Scan::default();
        for path in &module.targets {
            if let Ok(bytes) = std::fs::read(path) {
                scan.add(&bytes, finder.find(&bytes).is_some());
            }
        }
        if scan.trail {
            self.trail_dirs.push(module.dir.clone());
        }
        if scan.calls && !scan.sources.is_empty() {
            self.callers.push((module, scan.sources));
        }
    }

    /// Sorts the directories and indexes the calls.
    fn index(&mut self) {
        self.callers.sort_by(|a, b| a.0.dir.cmp(&b.0.dir));
        self.trail_dirs.sort();
        self.by_dir.clear();
        self.called.clear();
        for (i, (caller, sources)) in self.callers.iter().enumerate() {
            self.by_dir.insert(calls::canonical(&caller.dir), i);
            for source in sources.iter().filter(|source| is_local(source)) {
                self.called
                    .insert(calls::canonical(&caller.dir.join(source)));
            }
        }
    }

    /// Looks at one directory again (a file of it was saved or changed on disk): the rest of
    /// the tree is kept, so a save does not cost a walk of the repository.
    fn rescan(&mut self, dir: &Path, skipped: bool) {
        self.callers.retain(|(caller, _)| caller.dir != dir);
        self.trail_dirs.retain(|trail_dir| trail_dir != dir);
        if !skipped {
            self.add(list_module(dir, &Overlay::new()));
        }
        self.index();
    }
}

fn is_local(source: &str) -> bool {
    source.starts_with("./") || source.starts_with("../")
}

/// Whether a local `source` of one of the tree's callers leads to `dir`.
fn is_called(dir: &Path, tree: &Tree) -> bool {
    tree.called.contains(&calls::canonical(dir))
}

/// The report of a module that calls others, with the trails its calls reach judged as
/// `ctfix` at the top judges them: each shown at the `module` block that leads to it, with
/// the fix the command line writes at the call. The module's own fixes go first: when it
/// has some, the calls' wait (as the command line's next run would make them).
fn through_calls(dir: &Path, own: Report, tree: &Tree, settings: &Settings) -> Report {
    let start = calls::canonical(dir);
    let Some(&first) = tree.by_dir.get(&start) else {
        return own;
    };
    // This module and the callers its local calls reach, however deep.
    let mut reached = BTreeSet::from([first]);
    let mut queue = vec![first];
    while let Some(next) = queue.pop() {
        let (module, sources) = &tree.callers[next];
        for source in sources.iter().filter(|source| is_local(source)) {
            let target = calls::canonical(&module.dir.join(source));
            if let Some(&i) = tree.by_dir.get(&target) {
                if reached.insert(i) {
                    queue.push(i);
                }
            }
        }
    }
    let candidates = reached.iter().map(|&i| tree.callers[i].clone()).collect();
    let followed = calls::follow(candidates, &tree.trail_dirs, settings);
    let mut findings = Vec::new();
    for mut finding in followed.report.findings {
        let Some(site) = finding.via.first().cloned() else {
            continue;
        };
        if site.path.parent().map(calls::canonical) != Some(start.clone()) {
            continue;
        }
        let Some(name) = site.path.file_name() else {
            continue;
        };
        finding.path = dir.join(name);
        finding.line = site.line;
        finding.column = site.column;
        findings.push(finding);
    }
    let mut report = own;
    if findings.is_empty() {
        return report;
    }
    if report.changes.is_empty() {
        report.changes = followed.report.changes;
    } else {
        for fix in findings.iter_mut().filter_map(|f| f.fix.as_mut()) {
            if fix.selected {
                fix.selected = false;
                fix.note =
                    Some("not offered yet: this module's own fixes change it first".to_owned());
            }
        }
    }
    report.findings.extend(findings);
    report
}

/// The report of a called module judged through its callers: each instance of its trails
/// as the caller sets it up, with the fixes the command line writes at the call. The
/// module's own errors stay. Should the calls lead nowhere ctfix can follow, its own
/// findings stay, but with no fix: a fix of a shared module is never offered.
fn through_callers(dir: &Path, own: Report, callers: &Callers, settings: &Settings) -> Report {
    let excluded = settings.exclude.as_ref().map(|exclude| exclude.matcher());
    let candidates: Vec<(ModuleDir, Vec<String>)> = callers
        .callers
        .iter()
        .filter(|(caller, _)| {
            excluded
                .as_ref()
                .is_none_or(|excluded| caller.targets.iter().any(|path| !excluded(path)))
        })
        .cloned()
        .collect();
    let followed = calls::follow(candidates, &[dir.to_path_buf()], settings);
    let canonical_dir = calls::canonical(dir);
    let in_dir = |path: &Path| path.parent().map(calls::canonical) == Some(canonical_dir.clone());
    if followed.called.contains(&canonical_dir) {
        let findings: Vec<Finding> = followed
            .report
            .findings
            .into_iter()
            .filter(|finding| in_dir(&finding.path))
            .map(|mut finding| {
                // The trail's file, spelled as the editor's document is.
                if let Some(name) = finding.path.file_name() {
                    finding.path = dir.join(name);
                }
                finding
            })
            .collect();
        if !findings.is_empty() {
            return Report {
                findings,
                changes: followed.report.changes,
                errors: own.errors,
                ..Report::default()
            };
        }
    }
    let mut report = own;
    report.changes.clear();
    for fix in report.findings.iter_mut().filter_map(|f| f.fix.as_mut()) {
        fix.applicability = Applicability::DisplayOnly;
        fix.selected = false;
        fix.note = Some(
            "other modules call this one: run `ctfix` at the repository's top, which judges it \
             through its callers and fixes the calls"
                .to_owned(),
        );
    }
    report
}

/// The module of a directory: its `.tf` and `.tf.json` files on disk, plus open documents
/// not saved yet; every file is a target. Subdirectories are other modules.
fn list_module(dir: &Path, overlay: &Overlay) -> ModuleDir {
    let mut module = ModuleDir {
        dir: dir.to_path_buf(),
        ..ModuleDir::default()
    };
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if !path.metadata().is_ok_and(|m| m.is_file()) {
                continue;
            }
            match file_kind(&path) {
                Some(FileKind::Native) => module.files.push(path),
                Some(FileKind::Json) => module.json_files.push(path),
                None => {}
            }
        }
    }
    module.files.extend(overlay.keys().cloned());
    module.files.sort();
    module.files.dedup();
    module.json_files.sort();
    module.targets = module
        .files
        .iter()
        .chain(&module.json_files)
        .cloned()
        .collect();
    module
}

/// The local path a `file:` URI names; `None` for other documents (`untitled:`, …), which
/// ctfix leaves alone.
fn local_path(uri: &Uri) -> Option<PathBuf> {
    url::Url::parse(uri.as_str())
        .ok()
        .filter(|url| url.scheme() == "file")
        .and_then(|url| url.to_file_path().ok())
}

/// The `file:` URI of a local path.
fn uri_from_path(path: &Path) -> Option<Uri> {
    let url = url::Url::from_file_path(path).ok()?;
    Uri::from_str(url.as_str()).ok()
}

/// A file's text as it was judged, with the span of each top-level block's `kms_key_id`:
/// parsed once per judgement, not once per trail.
struct JudgedText {
    text: String,
    /// The length of a leading BOM (the judged source's offsets are after it).
    bom: usize,
    /// The offset (after any BOM) at which each block starts, and its `kms_key_id`'s span.
    attributes: HashMap<usize, Option<std::ops::Range<usize>>>,
}

impl JudgedText {
    fn new(path: &Path, text: String) -> JudgedText {
        use hcl_edit::Span as _;
        let bom = if text.starts_with(BOM) { BOM.len() } else { 0 };
        let attributes = SourceFile::from_bytes(path, text.as_bytes()[bom..].to_vec())
            .ok()
            .and_then(|source| parse_source(&source).ok())
            .map(|body| {
                body.blocks()
                    .filter_map(|block| {
                        let start = block.ident.span()?.start;
                        let attribute = block.body.get_attribute("kms_key_id");
                        Some((start, attribute.and_then(|attribute| attribute.span())))
                    })
                    .collect()
            })
            .unwrap_or_default();
        JudgedText {
            text,
            bom,
            attributes,
        }
    }
}

/// The range a trail's diagnostic covers: its `kms_key_id` attribute when it has one, else
/// its header line (`resource "aws_cloudtrail" "x" {`).
fn trail_range(file: &JudgedText, line: usize, column: usize, encoding: Encoding) -> Range {
    let (text, bom) = (&file.text, file.bom);
    let body_text = &text[bom..];
    let start = offset_of_line_col(body_text, line, column);
    let (start, end) = match file.attributes.get(&start).cloned().flatten() {
        Some(span) => (span.start, span.end),
        None => (start, line_end(body_text, start)),
    };
    Range::new(
        position_of(text, start + bom, encoding),
        position_of(text, end + bom, encoding),
    )
}

/// The byte offset of a 1-based line and character column, clamped to the line.
fn offset_of_line_col(text: &str, line: usize, column: usize) -> usize {
    let line_start = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum::<usize>();
    let rest = &text[line_start..];
    let line_text = rest.split('\n').next().unwrap_or_default();
    line_start
        + line_text
            .char_indices()
            .nth(column.saturating_sub(1))
            .map_or(line_text.len(), |(i, _)| i)
}

/// The end of the line holding `offset`, before its line break and trailing blanks.
fn line_end(text: &str, offset: usize) -> usize {
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    offset + text[offset..end].trim_end().len()
}

/// The line terminators of a text as the protocol counts them (`\r\n`, `\n`, and a lone
/// `\r`), as the byte ranges they take.
fn line_breaks(text: &str) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    let bytes = text.as_bytes();
    memchr::memchr2_iter(b'\n', b'\r', bytes).filter_map(move |i| match bytes[i] {
        b'\r' if bytes.get(i + 1) == Some(&b'\n') => None,
        b'\n' if i > 0 && bytes[i - 1] == b'\r' => Some(i - 1..i + 1),
        _ => Some(i..i + 1),
    })
}

/// The protocol position of a byte offset.
fn position_of(text: &str, offset: usize, encoding: Encoding) -> Position {
    let offset = offset.min(text.len());
    let (line, line_start) = line_breaks(text)
        .take_while(|terminator| terminator.end <= offset)
        .fold((0, 0), |(line, _), terminator| (line + 1, terminator.end));
    let in_line = &text[line_start..offset];
    let character = match encoding {
        Encoding::Utf8 => in_line.len(),
        Encoding::Utf16 => in_line.encode_utf16().count(),
    };
    Position::new(line as u32, character as u32)
}

/// The byte offset of a protocol position, clamped to the text and to the line: a character
/// past the line's end is its end, before the line's terminator (LSP 3.17, `Position`).
fn offset_of(text: &str, position: Position, encoding: Encoding) -> usize {
    let line_start = match (position.line as usize).checked_sub(1) {
        None => 0,
        Some(previous) => line_breaks(text)
            .nth(previous)
            .map_or(text.len(), |terminator| terminator.end),
    };
    let line_end = line_breaks(text)
        .map(|terminator| terminator.start)
        .find(|&start| start >= line_start)
        .unwrap_or(text.len());
    let line = &text[line_start..line_end];
    let mut units = 0;
    for (i, c) in line.char_indices() {
        if units >= position.character as usize {
            return line_start + i;
        }
        units += match encoding {
            Encoding::Utf8 => c.len_utf8(),
            Encoding::Utf16 => c.len_utf16(),
        };
    }
    line_end
}

/// The text edits that turn `before` into `after`: one per run of changed lines, so that the
/// editor leaves every unchanged line (and the marks on it) alone.
fn text_edits(before: &str, after: &str, encoding: Encoding) -> Vec<TextEdit> {
    use similar::{DiffOp, TextDiff};
    let diff = TextDiff::from_lines(before, after);
    let old: Vec<&str> = diff.iter_old_slices().collect();
    let new: Vec<&str> = diff.iter_new_slices().collect();
    let offset_of_line = |index: usize| old[..index].iter().map(|s| s.len()).sum::<usize>();
    let mut edits = Vec::new();
    let mut pending: Option<(std::ops::Range<usize>, std::ops::Range<usize>)> = None;
    let mut flush = |pending: &mut Option<(std::ops::Range<usize>, std::ops::Range<usize>)>| {
        if let Some((old_lines, new_lines)) = pending.take() {
            let start = offset_of_line(old_lines.start);
            let end = offset_of_line(old_lines.end);
            edits.push(TextEdit {
                range: Range::new(
                    position_of(before, start, encoding),
                    position_of(before, end, encoding),
                ),
                new_text: new[new_lines].concat(),
            });
        }
    };
    for op in diff.ops() {
        if let DiffOp::Equal { .. } = op {
            flush(&mut pending);
            continue;
        }
        let (old_range, new_range) = (op.old_range(), op.new_range());
        pending = Some(match pending.take() {
            Some((o, n)) => (o.start..old_range.end, n.start..new_range.end),
            None => (old_range, new_range),
        });
    }
    flush(&mut pending);
    edits
}

fn overlaps(a: &Range, b: &Range) -> bool {
    a.start <= b.end && b.start <= a.end
}

fn contains(range: &Range, position: Position) -> bool {
    range.start <= position && position <= range.end
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Applies protocol edits to a text (as a client does: all ranges refer to the original).
    fn apply(text: &str, edits: &[TextEdit], encoding: Encoding) -> String {
        let mut spans: Vec<(usize, usize, &str)> = edits
            .iter()
            .map(|e| {
                (
                    offset_of(text, e.range.start, encoding),
                    offset_of(text, e.range.end, encoding),
                    e.new_text.as_str(),
                )
            })
            .collect();
        spans.sort();
        let mut out = text.to_owned();
        for (start, end, new) in spans.into_iter().rev() {
            out.replace_range(start..end, new);
        }
        out
    }

    #[test]
    fn edits_reproduce_the_change_in_both_encodings() {
        let before = "a = \"é\"\nb = 1\r\nc = 2\nd = 3";
        let after = "a = \"é\"\nkms = 1\nb = 1\r\nc = 2\nd = 4\nnew = {}\n";
        for encoding in [Encoding::Utf8, Encoding::Utf16] {
            let edits = text_edits(before, after, encoding);
            assert_eq!(apply(before, &edits, encoding), after);
            assert_eq!(edits.len(), 2, "{edits:?}");
        }
    }

    #[test]
    fn positions_count_utf16_units_unless_utf8_is_agreed() {
        let text = "x = \"😀\" # y\nz";
        let offset = text.find('#').unwrap();
        assert_eq!(
            position_of(text, offset, Encoding::Utf16),
            Position::new(0, 9)
        );
        assert_eq!(
            position_of(text, offset, Encoding::Utf8),
            Position::new(0, 11)
        );
        for encoding in [Encoding::Utf8, Encoding::Utf16] {
            assert_eq!(
                offset_of(text, position_of(text, offset, encoding), encoding),
                offset
            );
        }
    }

    #[test]
    fn a_lone_cr_ends_a_line_and_a_character_past_the_end_clamps_before_the_terminator() {
        let text = "ab\r\ncd\ref\ngh";
        for encoding in [Encoding::Utf8, Encoding::Utf16] {
            assert_eq!(offset_of(text, Position::new(0, 99), encoding), 2);
            assert_eq!(offset_of(text, Position::new(1, 99), encoding), 6);
            assert_eq!(offset_of(text, Position::new(2, 1), encoding), 8);
            assert_eq!(offset_of(text, Position::new(3, 2), encoding), 12);
            assert_eq!(offset_of(text, Position::new(9, 0), encoding), text.len());
            assert_eq!(position_of(text, 8, encoding), Position::new(2, 1));
            assert_eq!(position_of(text, 4, encoding), Position::new(1, 0));
            assert_eq!(position_of(text, 12, encoding), Position::new(3, 2));
        }
    }

    #[test]
    fn bad_bodies_get_json_rpc_errors() {
        let code = |body: &[u8]| match message_of(body) {
            Ok(_) => None,
            Err(error) => Some((error["error"]["code"].clone(), error["id"].clone())),
        };
        assert_eq!(code(b"{not json}"), Some((json!(-32700), json!(null))));
        assert_eq!(code(b"\"\xff\""), Some((json!(-32700), json!(null))));
        assert_eq!(code(b"{}"), Some((json!(-32600), json!(null))));
        assert_eq!(code(b"[1]"), Some((json!(-32600), json!(null))));
        assert_eq!(
            code(br#"{"id":3,"method":7}"#),
            Some((json!(-32600), json!(3)))
        );
        assert_eq!(code(br#"{"jsonrpc":"2.0","method":"exit"}"#), None);
        assert_eq!(code(br#"{"jsonrpc":"2.0","id":"a","result":null}"#), None);
    }

    #[test]
    fn the_reader_answers_bad_bodies_and_stops_only_at_broken_framing() {
        let ok = r#"{"jsonrpc":"2.0","method":"initialized","params":{}}"#;
        let input = format!(
            "Content-Length: {}\r\n\r\n{ok}Content-Length: 2\r\n\r\n{{}}\r\ncontent-length: {}\r\nContent-Type: x\r\n\r\n{ok}",
            ok.len(),
            ok.len()
        );
        let (sender, receiver) = crossbeam_channel::unbounded();
        let mut answers = Vec::new();
        let outcome = read_messages(&mut input.as_bytes(), &sender, &mut |text| {
            answers.push(text.to_owned());
            Ok(())
        });
        assert!(outcome.is_ok(), "{outcome:?}");
        assert_eq!(receiver.try_iter().count(), 2);
        assert_eq!(answers.len(), 1);
        assert!(answers[0].contains("-32600"), "{answers:?}");
        for broken in [
            "Content-Length: x\r\n\r\n{}",
            "Content-Type: x\r\n\r\n{}",
            "junk\r\n\r\n",
        ] {
            let outcome = read_messages(&mut broken.as_bytes(), &sender, &mut |_| Ok(()));
            assert!(outcome.is_err(), "{broken:?}");
        }
    }

    #[test]
    fn a_panicking_request_becomes_an_error_response() {
        let response = respond_catching(RequestId::from(7), "textDocument/codeAction", || {
            panic!("boom")
        });
        let error = response.response_result.expect_err("an error response");
        assert_eq!(error.code, ErrorCode::InternalError as i32);
        assert!(error.message.contains("boom"), "{}", error.message);
        assert_eq!(response.id, RequestId::from(7));
    }

    #[test]
    fn the_range_is_kms_key_id_when_set_else_the_header() {
        let text = "resource \"aws_cloudtrail\" \"a\" {\n  name = \"a\"\n  kms_key_id = \"\"\n}\nresource \"aws_cloudtrail\" \"b\" {\n  name = \"b\"\n}\n";
        let file = JudgedText::new(Path::new("main.tf"), text.to_owned());
        let a = trail_range(&file, 1, 1, Encoding::Utf16);
        assert_eq!(a, Range::new(Position::new(2, 2), Position::new(2, 17)));
        let b = trail_range(&file, 5, 1, Encoding::Utf16);
        assert_eq!(b, Range::new(Position::new(4, 0), Position::new(4, 31)));
    }
}
