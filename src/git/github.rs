//! The pull request, through GitHub's REST API (`--pr`): find the one whose head is the
//! branch, then open it, or update its title and body instead of opening a duplicate.
//!
//! HTTP is ureq with native-tls, which on Linux is the OpenSSL git2 already links: one TLS
//! stack. The token travels only in the `Authorization` header; every message that leaves
//! this module has it masked, in case a server or proxy echoes it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// GitHub's public API, when `GITHUB_API_URL` is not set.
pub const DEFAULT_API: &str = "https://api.github.com";

/// GitHub refuses a body longer than this (characters).
pub const BODY_LIMIT: usize = 65_536;

/// The longest ctfix waits for one rate-limit reset, and how many times it retries.
const MAX_WAIT: Duration = Duration::from_secs(60);
const MAX_RETRIES: u32 = 3;

/// A token, never shown: its `Debug` prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Where the API is and who ctfix is there (from `GITHUB_TOKEN`/`GH_TOKEN`,
/// `GITHUB_API_URL`, `GITHUB_REPOSITORY`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forge {
    /// The API's base URL.
    pub api: String,
    /// The token, if one was given.
    pub token: Option<Token>,
    /// `owner/name`, if given; else read from the push remote's URL.
    pub repository: Option<String>,
}

impl Forge {
    /// The settings GitHub Actions (or the user) put in the environment.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self {
            api: var("GITHUB_API_URL").unwrap_or_else(|| DEFAULT_API.to_owned()),
            token: var("GITHUB_TOKEN").or_else(|| var("GH_TOKEN")).map(Token),
            repository: var("GITHUB_REPOSITORY"),
        }
    }
}

/// An API call that failed; the message is the API's, with the token masked.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ApiError(String);

/// `owner/name` from a GitHub remote URL: `https://host/owner/name(.git)`,
/// `git@host:owner/name(.git)`, `ssh://git@host/owner/name(.git)`.
pub fn repository_from_url(url: &str) -> Option<String> {
    let path = match url.split_once("://") {
        Some((_, rest)) => rest.split_once('/')?.1,
        None => url.split_once(':')?.1,
    };
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let mut parts = path.rsplit('/');
    let name = parts.next().filter(|s| !s.is_empty())?;
    let owner = parts.next().filter(|s| !s.is_empty())?;
    Some(format!("{owner}/{name}"))
}

/// A pull request as the API describes it, the parts ctfix needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its number.
    pub number: u64,
    /// Its web address.
    pub url: String,
    /// Open (or closed).
    pub open: bool,
    /// Merged (a closed, unmerged one was declined).
    pub merged: bool,
    /// Its title.
    pub title: String,
    /// Its body.
    pub body: String,
}

impl Found {
    fn from_json(value: &Value) -> Option<Self> {
        Some(Self {
            number: value.get("number")?.as_u64()?,
            url: value.get("html_url")?.as_str()?.to_owned(),
            open: value.get("state")?.as_str()? == "open",
            merged: value.get("merged_at").is_some_and(|m| !m.is_null()),
            title: value.get("title")?.as_str()?.to_owned(),
            body: value
                .get("body")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        })
    }

    /// Whether ctfix opened it (its body carries ctfix's hidden comment).
    pub fn is_ctfix(&self) -> bool {
        self.body.contains(MARKER_START)
    }
}

/// The start of the hidden comment that marks ctfix's pull requests.
pub const MARKER_START: &str = "<!-- ctfix: ";

/// The pull request's body: `body` (what `--pr-body` writes), then a hidden comment with
/// `state` (JSON) so ctfix recognises its own pull requests. Kept under GitHub's limit: a
/// body too long is cut, with a note.
pub fn body_with_marker(body: &str, state: &Value) -> String {
    let marker = format!("\n{MARKER_START}{state} -->\n");
    let note = "\n\n*(cut to fit GitHub's limit; run ctfix locally for the whole report)*\n";
    let room = BODY_LIMIT - marker.chars().count();
    if body.chars().count() <= room {
        return format!("{body}{marker}");
    }
    let keep: String = body.chars().take(room - note.chars().count()).collect();
    format!("{keep}{note}{marker}")
}

/// A client for one repository's pull requests.
pub struct Client {
    agent: ureq::Agent,
    api: String,
    token: Token,
    owner: String,
    repository: String,
}

impl Client {
    /// A client for `repository` (`owner/name`) at `forge.api`. Fails without a token.
    pub fn new(forge: &Forge, repository: &str) -> Result<Self, ApiError> {
        let token = forge.token.clone().ok_or_else(|| {
            ApiError(
                "--pr needs a token: set GITHUB_TOKEN (or GH_TOKEN) with pull-request write access"
                    .to_owned(),
            )
        })?;
        let Some((owner, _)) = repository.split_once('/') else {
            return Err(ApiError(format!(
                "{repository:?} is not a GitHub repository (owner/name)"
            )));
        };
        let tls = native_tls::TlsConnector::new()
            .map_err(|error| ApiError(format!("cannot set up TLS: {error}")))?;
        let agent = ureq::AgentBuilder::new()
            .tls_connector(std::sync::Arc::new(tls))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("ctfix/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Self {
            agent,
            api: forge.api.trim_end_matches('/').to_owned(),
            token,
            owner: owner.to_owned(),
            repository: repository.to_owned(),
        })
    }

    /// Every pull request whose head is `branch` (open and closed), newest first.
    pub fn find(&self, branch: &str) -> Result<Vec<Found>, ApiError> {
        let path = format!(
            "/repos/{}/pulls?state=all&per_page=100&head={}",
            self.repository,
            query_escape(&format!("{}:{branch}", self.owner))
        );
        let value = self.call("GET", &path, None)?;
        let mut found: Vec<Found> = value
            .as_array()
            .map(|list| list.iter().filter_map(Found::from_json).collect())
            .unwrap_or_default();
        found.sort_by_key(|p| std::cmp::Reverse(p.number));
        Ok(found)
    }

    /// Opens a pull request from `head` into `base`.
    pub fn create(
        &self,
        head: &str,
        base: &str,
        title: &str,
        body: &str,
        draft: bool,
    ) -> Result<Found, ApiError> {
        let request =
            json!({"title": title, "head": head, "base": base, "body": body, "draft": draft});
        let value = self.call(
            "POST",
            &format!("/repos/{}/pulls", self.repository),
            Some(&request),
        )?;
        Found::from_json(&value).ok_or_else(|| self.unexpected("opening the pull request"))
    }

    /// Sets an open pull request's title and body.
    pub fn update(&self, number: u64, title: &str, body: &str) -> Result<Found, ApiError> {
        let request = json!({"title": title, "body": body});
        let value = self.call(
            "PATCH",
            &format!("/repos/{}/pulls/{number}", self.repository),
            Some(&request),
        )?;
        Found::from_json(&value).ok_or_else(|| self.unexpected("updating the pull request"))
    }

    /// Adds labels (pull requests are issues for labels).
    pub fn add_labels(&self, number: u64, labels: &[String]) -> Result<(), ApiError> {
        if labels.is_empty() {
            return Ok(());
        }
        self.call(
            "POST",
            &format!("/repos/{}/issues/{number}/labels", self.repository),
            Some(&json!({ "labels": labels })),
        )?;
        Ok(())
    }

    fn unexpected(&self, doing: &str) -> ApiError {
        ApiError(format!(
            "GitHub ({}) answered {doing} with something that is not a pull request",
            self.api
        ))
    }

    /// One call, retried after a rate limit (bounded wait, bounded retries).
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, ApiError> {
        let url = format!("{}{path}", self.api);
        let shown = format!("{method} {}", path.split('?').next().unwrap_or(path));
        let mut retries = 0;
        loop {
            let request = self
                .agent
                .request(method, &url)
                .set("Accept", "application/vnd.github+json")
                .set("X-GitHub-Api-Version", "2022-11-28")
                .set("Authorization", &format!("Bearer {}", self.token.0));
            let result = match body {
                Some(body) => request
                    .set("Content-Type", "application/json")
                    .send_string(&body.to_string()),
                None => request.call(),
            };
            match result {
                Ok(response) => {
                    let text = response.into_string().map_err(|error| {
                        self.masked(format!("GitHub: {shown}: reading the answer: {error}"))
                    })?;
                    return serde_json::from_str(&text).map_err(|error| {
                        self.masked(format!("GitHub: {shown}: the answer is not JSON: {error}"))
                    });
                }
                Err(ureq::Error::Status(status, response)) => {
                    let wait = rate_limit_wait(status, &response);
                    let message = api_message(response);
                    match wait {
                        Some(wait) if retries < MAX_RETRIES && wait <= MAX_WAIT => {
                            retries += 1;
                            std::thread::sleep(wait);
                        }
                        Some(wait) => {
                            return Err(self.masked(format!(
                                "GitHub: {shown}: rate limited ({status}: {message}); gave up after {retries} retr{} (the next reset is in {} s)",
                                if retries == 1 { "y" } else { "ies" },
                                wait.as_secs()
                            )))
                        }
                        None => {
                            return Err(self.masked(format!(
                                "GitHub: {shown}: {status} {message}{}",
                                hint(status)
                            )))
                        }
                    }
                }
                Err(ureq::Error::Transport(error)) => {
                    return Err(self.masked(format!(
                        "GitHub: {shown}: cannot reach {}: {error}",
                        self.api
                    )))
                }
            }
        }
    }

    /// Masks the token wherever it appears.
    fn masked(&self, message: String) -> ApiError {
        if self.token.0.is_empty() {
            return ApiError(message);
        }
        ApiError(message.replace(&self.token.0, "***"))
    }
}

/// What to do about a status, in words.
fn hint(status: u16) -> &'static str {
    match status {
        401 => " (the token was refused: check GITHUB_TOKEN / GH_TOKEN)",
        403 => " (the token lacks permission: it needs pull-requests: write and contents: write)",
        404 => " (no such repository for this token: check GITHUB_REPOSITORY or the remote URL, and the token's access)",
        422 => " (GitHub refused the request)",
        _ => "",
    }
}

/// How long to wait before retrying a rate-limited call: `Retry-After`, else until
/// `X-RateLimit-Reset` when the limit is spent. `None`: not a rate limit.
fn rate_limit_wait(status: u16, response: &ureq::Response) -> Option<Duration> {
    if status != 429 && status != 403 {
        return None;
    }
    if let Some(seconds) = response
        .header("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        return Some(Duration::from_secs(seconds));
    }
    let spent = response.header("x-ratelimit-remaining").map(str::trim) == Some("0");
    if let Some(reset) = response
        .header("x-ratelimit-reset")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|_| spent || status == 429)
    {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        return Some(Duration::from_secs(reset.saturating_sub(now).max(1)));
    }
    (status == 429).then_some(Duration::from_secs(60))
}

/// The API's `message` (and its validation errors), else the body's start.
fn api_message(response: ureq::Response) -> String {
    let text = response.into_string().unwrap_or_default();
    let Ok(value) = serde_json::from_str::<Value>(&text) else {
        return text.chars().take(200).collect();
    };
    let mut message = value
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if let Some(errors) = value.get("errors").and_then(Value::as_array) {
        let details: Vec<String> = errors
            .iter()
            .filter_map(|e| {
                e.get("message")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .or_else(|| e.as_str().map(str::to_owned))
            })
            .collect();
        if !details.is_empty() {
            message = format!("{message}: {}", details.join("; "));
        }
    }
    message
}

/// Percent-encodes a query value.
fn query_escape(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_repository_from_remote_urls() {
        for url in [
            "https://github.com/acme/infra.git",
            "https://x-access-token:t@github.com/acme/infra",
            "git@github.com:acme/infra.git",
            "ssh://git@github.com/acme/infra.git",
            "https://ghe.example.com/acme/infra/",
        ] {
            assert_eq!(
                repository_from_url(url).as_deref(),
                Some("acme/infra"),
                "{url}"
            );
        }
        assert_eq!(repository_from_url("/srv/infra.git"), None);
    }

    #[test]
    fn a_long_body_is_cut_under_the_limit_and_keeps_the_marker() {
        let body = "x".repeat(100_000);
        let full = body_with_marker(&body, &json!({"branch": "b"}));
        assert!(full.chars().count() <= BODY_LIMIT);
        assert!(full.contains("<!-- ctfix: {\"branch\":\"b\"} -->"));
    }

    #[test]
    fn the_token_never_shows_in_debug() {
        assert_eq!(format!("{:?}", Token::new("secret")), "***");
    }
}
