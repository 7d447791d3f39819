//! Fleet runs through the built binary, on real repositories with bare remotes made in temp
//! dirs: many repositories in one run, each with its own branch, commit and push; problems
//! staying on their own row; `--repos` with `file://` URLs; Ctrl-C part-way; `--jobs` not
//! changing the outcome. The `git` command sets the repositories up and reads them back.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::*;

const BRANCH: &str = "ctfix/cloudtrail-kms";

/// A home directory with a git identity and nothing else, shared by git and ctfix.
struct Fleet {
    tmp: tempfile::TempDir,
    home: PathBuf,
}

impl Fleet {
    fn new() -> Fleet {
        let tmp = memory_tempdir();
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(
            home.join(".gitconfig"),
            "[user]\n\tname = Platform Bot\n\temail = bot@example.com\n[init]\n\tdefaultBranch = main\n",
        )
        .unwrap();
        Fleet { tmp, home }
    }

    fn root(&self) -> &Path {
        self.tmp.path()
    }

    fn git(&self, dir: &Path, args: &[&str]) -> String {
        let output = Command::new("git")
            .current_dir(dir)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", &self.home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .args(args)
            .output()
            .expect("run git (it must be installed for these tests)");
        assert!(
            output.status.success(),
            "git {args:?} in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .unwrap()
            .trim_end()
            .to_owned()
    }

    /// A repository `name` holding `files`, committed on main and pushed to its bare remote
    /// `remotes/name.git`. Returns the working directory.
    fn repo(&self, name: &str, files: &[(&str, String)]) -> PathBuf {
        let remote = self.remote(name);
        self.git(self.root(), &["init", "-q", "--bare", &display(&remote)]);
        let work = self.root().join(name);
        std::fs::create_dir_all(&work).unwrap();
        for (path, text) in files {
            let path = work.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        self.git(&work, &["init", "-q"]);
        self.git(&work, &["add", "-A"]);
        self.git(&work, &["commit", "-q", "-m", "infra"]);
        self.git(&work, &["remote", "add", "origin", &display(&remote)]);
        self.git(&work, &["push", "-q", "origin", "main"]);
        work
    }

    fn remote(&self, name: &str) -> PathBuf {
        self.root().join("remotes").join(format!("{name}.git"))
    }

    fn ctfix(&self, dir: &Path, args: &[&str]) -> Output {
        self.ctfix_command(dir, args)
            .output()
            .expect("run the ctfix binary")
    }

    fn ctfix_command(&self, dir: &Path, args: &[&str]) -> Command {
        let mut command = ctfix();
        command
            .current_dir(dir)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", &self.home)
            .env("XDG_CACHE_HOME", self.root().join("cache"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env_remove("GIT_AUTHOR_NAME")
            .env_remove("GIT_AUTHOR_EMAIL")
            .env_remove("CTFIX_FLEET_TEST_DELAY_MS")
            .args(args);
        command
    }

    /// The branch's commit in the remote, or `None` when the remote has no such branch.
    fn remote_branch(&self, name: &str) -> Option<String> {
        let remote = self.remote(name);
        let heads = self.git(&remote, &["branch", "--list", BRANCH]);
        (!heads.is_empty()).then(|| self.git(&remote, &["rev-parse", BRANCH]))
    }

    /// Asserts that the remote's branch holds exactly one commit on top of main, changing
    /// exactly `files`.
    fn assert_branch_commit(&self, name: &str, files: &[&str]) {
        let remote = self.remote(name);
        assert!(
            self.remote_branch(name).is_some(),
            "{name}: the remote has no branch {BRANCH}"
        );
        let count = self.git(
            &remote,
            &["rev-list", "--count", &format!("main..{BRANCH}")],
        );
        assert_eq!(count, "1", "{name}: one commit on top of main");
        let parent = self.git(&remote, &["rev-parse", &format!("{BRANCH}^")]);
        assert_eq!(parent, self.git(&remote, &["rev-parse", "main"]), "{name}");
        let changed = self.git(&remote, &["diff", "--name-only", "main", BRANCH]);
        assert_eq!(changed.lines().collect::<Vec<_>>(), files, "{name}");
    }
}

fn display(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "stdout is not JSON ({error}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            stderr_of(output)
        )
    })
}

/// The table row of `repository` in a fleet run's JSON.
fn row<'a>(json: &'a Value, repository: &str) -> &'a Value {
    json["table"]
        .as_array()
        .expect("a table")
        .iter()
        .find(|row| row["repository"] == repository)
        .unwrap_or_else(|| panic!("no row for {repository} in {json:#}"))
}

fn names(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("repo{i:02}")).collect()
}

/// Twenty repositories, four with a problem of their own: each problem is reported on its
/// repository's row, and every other repository gets exactly its branch and pushed commit.
#[test]
fn twenty_repositories_each_get_their_own_branch_and_problems_stay_on_their_rows() {
    let fleet = Fleet::new();
    let names = names(20);
    let (broken, dirty, rejecting, clean) = ("repo03", "repo07", "repo11", "repo15");
    for name in &names {
        let mut files = vec![("main.tf", trail_tf(&name.replace("repo", "trail")))];
        if name == broken {
            files[0].1.push_str("resource \"aws_s3_bucket\" {{{\n");
        }
        if name == clean {
            files = vec![(
                "main.tf",
                "resource \"aws_s3_bucket\" \"logs\" {\n  bucket = \"logs\"\n}\n".to_owned(),
            )];
        }
        fleet.repo(name, &files);
    }
    // Work a person has not committed, in the file to fix.
    let dirty_file = fleet.root().join(dirty).join("main.tf");
    let mut work = std::fs::read_to_string(&dirty_file).unwrap();
    work.push_str("# work in progress\n");
    std::fs::write(&dirty_file, &work).unwrap();
    // The remote refuses the branch: it has a branch `ctfix`, so `ctfix/...` cannot exist.
    fleet.git(&fleet.remote(rejecting), &["branch", "ctfix", "main"]);

    let mut args = vec![
        "--apply", "--yes", "--branch", BRANCH, "--push", "--format", "json", "--jobs", "4",
    ];
    args.extend(names.iter().map(String::as_str));
    let output = fleet.ctfix(fleet.root(), &args);
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    let json = json_of(&output);
    assert_eq!(json["repositories"].as_array().unwrap().len(), 20);
    assert_eq!(json["summary"]["repositories"], 20);
    assert_eq!(json["summary"]["failed"], 3, "{:#}", json["summary"]);

    for name in &names {
        let row = row(&json, name);
        match name.as_str() {
            n if n == broken => {
                assert_eq!(row["branch_state"], "failed", "{row:#}");
                assert!(row["errors"][0].as_str().unwrap().contains("cannot parse"));
                assert_eq!(fleet.remote_branch(name), None);
            }
            n if n == dirty => {
                assert_eq!(row["branch_state"], "failed", "{row:#}");
                assert!(
                    row["errors"][0]
                        .as_str()
                        .unwrap()
                        .contains("uncommitted changes"),
                    "{row:#}"
                );
                assert_eq!(std::fs::read_to_string(&dirty_file).unwrap(), work);
                assert_eq!(fleet.remote_branch(name), None);
            }
            n if n == rejecting => {
                assert_eq!(row["errors"].as_array().unwrap().len(), 1, "{row:#}");
                assert!(
                    row["errors"][0].as_str().unwrap().contains("not pushed"),
                    "{row:#}"
                );
                assert_eq!(fleet.remote_branch(name), None);
            }
            n if n == clean => {
                assert_eq!(row["branch_state"], "nothing-to-do", "{row:#}");
                assert_eq!(row["errors"].as_array().unwrap().len(), 0);
                assert_eq!(fleet.remote_branch(name), None);
            }
            _ => {
                assert_eq!(row["branch_state"], "created", "{row:#}");
                assert_eq!((&row["trails"], &row["fixed"]), (&1.into(), &1.into()));
                assert!(row["errors"].as_array().unwrap().is_empty(), "{row:#}");
                fleet.assert_branch_commit(name, &["main.tf"]);
                assert_eq!(
                    fleet.remote_branch(name).as_ref(),
                    row["commit"].as_str().map(str::to_owned).as_ref()
                );
            }
        }
    }
}

/// `--repos` with `file://` URLs: clones into the work directory, fixes, commits and pushes;
/// one pull-request body per repository through `{repo}`; a dry run before writes nothing.
#[test]
fn repos_file_with_file_urls_clones_fixes_and_pushes() {
    let fleet = Fleet::new();
    let names = names(3);
    let mut list = String::from("# the platform's repositories\n\n");
    for name in &names {
        fleet.repo(name, &[("main.tf", trail_tf(name))]);
        list.push_str(&format!("file://{}\n", display(&fleet.remote(name))));
    }
    let repos = fleet.root().join("repos.txt");
    std::fs::write(&repos, list).unwrap();
    let workdir = fleet.root().join("clones");
    let repos_arg = display(&repos);
    let workdir_arg = display(&workdir);

    let dry = fleet.ctfix(
        fleet.root(),
        &[
            "--repos",
            &repos_arg,
            "--workdir",
            &workdir_arg,
            "--no-diff",
        ],
    );
    assert_eq!(dry.status.code(), Some(1), "{}", stderr_of(&dry));
    let table = String::from_utf8_lossy(&dry.stdout);
    assert!(table.contains("would-change"), "{table}");
    let sarif = fleet.ctfix(
        fleet.root(),
        &[
            "--repos",
            &repos_arg,
            "--workdir",
            &workdir_arg,
            "--format",
            "sarif",
        ],
    );
    assert_eq!(sarif.status.code(), Some(1), "{}", stderr_of(&sarif));
    let runs = json_of(&sarif)["runs"].as_array().unwrap().len();
    assert_eq!(runs, 3, "one SARIF run per repository");
    for name in &names {
        assert_eq!(fleet.remote_branch(name), None, "a dry run pushes nothing");
    }

    std::fs::create_dir(fleet.root().join("bodies")).unwrap();
    let output = fleet.ctfix(
        fleet.root(),
        &[
            "--repos",
            &repos_arg,
            "--workdir",
            &workdir_arg,
            "--apply",
            "--yes",
            "--branch",
            BRANCH,
            "--push",
            "--pr-body",
            "bodies/{repo}.md",
            "--format",
            "json",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let json = json_of(&output);
    for name in &names {
        fleet.assert_branch_commit(name, &["main.tf"]);
        let body = std::fs::read_to_string(fleet.root().join(format!("bodies/{name}.md")))
            .expect("one body per repository");
        assert!(body.contains(&format!("aws_cloudtrail.{name}")), "{body}");
        let url = format!("file://{}", display(&fleet.remote(name)));
        assert_eq!(row(&json, &url)["branch_state"], "created");
    }
    assert_eq!(std::fs::read_dir(&workdir).unwrap().count(), 3);

    // Again: the clones are fetched and reused, and every branch is already right.
    let pushed: Vec<_> = names.iter().map(|n| fleet.remote_branch(n)).collect();
    let again = fleet.ctfix(
        fleet.root(),
        &[
            "--repos",
            &repos_arg,
            "--workdir",
            &workdir_arg,
            "--apply",
            "--yes",
            "--branch",
            BRANCH,
            "--push",
            "--format",
            "json",
        ],
    );
    assert_eq!(again.status.code(), Some(0), "{}", stderr_of(&again));
    let json = json_of(&again);
    for (name, pushed) in names.iter().zip(pushed) {
        let url = format!("file://{}", display(&fleet.remote(name)));
        assert_eq!(row(&json, &url)["branch_state"], "up-to-date", "{json:#}");
        assert_eq!(fleet.remote_branch(name), pushed, "nothing pushed again");
    }
}

/// A malformed line names itself, and nothing starts (no clone is made).
#[test]
fn a_malformed_repos_line_stops_the_run_before_anything_starts() {
    let fleet = Fleet::new();
    fleet.repo("repo00", &[("main.tf", trail_tf("a"))]);
    let repos = fleet.root().join("repos.txt");
    std::fs::write(
        &repos,
        format!(
            "file://{}\n# fine\nftp://example.com/o/r\n",
            display(&fleet.remote("repo00"))
        ),
    )
    .unwrap();
    let workdir = fleet.root().join("clones");
    let output = fleet.ctfix(
        fleet.root(),
        &["--repos", &display(&repos), "--workdir", &display(&workdir)],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr_of(&output).contains("repos.txt:3:"),
        "{}",
        stderr_of(&output)
    );
    assert!(!workdir.exists(), "nothing started");
}

/// A local checkout is back on its branch after the run: left on the bot's branch, next
/// week's run judged that branch and reported it up to date while the base had a new trail.
#[test]
fn a_local_checkout_is_back_on_its_branch_and_next_week_sees_the_base() {
    let fleet = Fleet::new();
    let work = fleet.repo("local", &[("main.tf", trail_tf("a"))]);
    let repos = fleet.root().join("repos.txt");
    std::fs::write(&repos, "local\n").unwrap();
    let run = || {
        let output = fleet.ctfix(
            fleet.root(),
            &[
                "--repos",
                &display(&repos),
                "--apply",
                "--yes",
                "--branch",
                BRANCH,
                "--push",
                "--format",
                "json",
            ],
        );
        assert!(output.status.code().unwrap() < 2, "{}", stderr_of(&output));
        json_of(&output)["table"][0]["branch_state"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(run(), "created");
    assert_eq!(fleet.git(&work, &["branch", "--show-current"]), "main");
    assert_eq!(fleet.git(&work, &["status", "--porcelain"]), "");
    // A new trail lands on main.
    std::fs::write(work.join("b.tf"), trail_tf("b")).unwrap();
    fleet.git(&work, &["add", "-A"]);
    fleet.git(&work, &["commit", "-q", "-m", "b"]);
    fleet.git(&work, &["push", "-q", "origin", "main"]);
    assert_eq!(run(), "updated");
    fleet.assert_branch_commit("local", &["b.tf", "main.tf"]);
    assert_eq!(fleet.git(&work, &["branch", "--show-current"]), "main");
    // A detached checkout (with --base naming its branch) is left detached where it was.
    fleet.git(&work, &["checkout", "-q", "--detach", "main"]);
    let detached = fleet.git(&work, &["rev-parse", "HEAD"]);
    let output = fleet.ctfix(
        fleet.root(),
        &[
            "--repos",
            &display(&repos),
            "--apply",
            "--yes",
            "--branch",
            BRANCH,
            "--push",
            "--base",
            "main",
        ],
    );
    assert!(output.status.code().unwrap() < 2, "{}", stderr_of(&output));
    assert_eq!(fleet.git(&work, &["branch", "--show-current"]), "");
    assert_eq!(fleet.git(&work, &["rev-parse", "HEAD"]), detached);
    // A checkout someone left on the bot's branch is refused, not judged.
    fleet.git(&work, &["switch", "-q", BRANCH]);
    let output = fleet.ctfix(
        fleet.root(),
        &[
            "--repos",
            &display(&repos),
            "--apply",
            "--yes",
            "--branch",
            BRANCH,
            "--push",
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        stderr_of(&output)
    );
    assert!(
        all.contains("the checkout is on ctfix/cloudtrail-kms, ctfix's branch"),
        "{all}"
    );
}

/// The clone cache follows the remote's default branch as it is now: a repository empty when
/// first cloned is judged once it has content, and a renamed default branch is followed.
#[test]
fn the_clone_follows_the_remotes_default_branch() {
    let fleet = Fleet::new();
    let remote = fleet.remote("late");
    fleet.git(
        fleet.root(),
        &["init", "-q", "--bare", "-b", "main", &display(&remote)],
    );
    let repos = fleet.root().join("repos.txt");
    std::fs::write(&repos, format!("file://{}\n", display(&remote))).unwrap();
    let workdir = fleet.root().join("clones");
    let run = || {
        let output = fleet.ctfix(
            fleet.root(),
            &[
                "--repos",
                &display(&repos),
                "--workdir",
                &display(&workdir),
                "--format",
                "json",
            ],
        );
        assert!(output.status.code().unwrap() < 2, "{}", stderr_of(&output));
        json_of(&output)["summary"]["trails"].as_u64().unwrap()
    };
    assert_eq!(run(), 0, "empty");
    assert_eq!(run(), 0, "still empty");
    // Content arrives on main.
    let work = fleet.root().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("main.tf"), trail_tf("a")).unwrap();
    fleet.git(&work, &["init", "-q"]);
    fleet.git(&work, &["add", "-A"]);
    fleet.git(&work, &["commit", "-q", "-m", "infra"]);
    fleet.git(&work, &["push", "-q", &display(&remote), "main"]);
    assert_eq!(run(), 1, "the pushed trail");
    // The default branch becomes trunk, with a second trail; main stays behind.
    std::fs::write(work.join("b.tf"), trail_tf("b")).unwrap();
    fleet.git(&work, &["add", "-A"]);
    fleet.git(&work, &["commit", "-q", "-m", "more"]);
    fleet.git(&work, &["push", "-q", &display(&remote), "main:trunk"]);
    fleet.git(&remote, &["symbolic-ref", "HEAD", "refs/heads/trunk"]);
    assert_eq!(run(), 2, "trunk's trails");
}

/// One repository written several ways (`dd`, `./dd`, `dd/`, its absolute path; a URL with
/// and without `.git`) is a repeated line: two jobs on one working tree would race.
#[test]
fn a_repository_written_two_ways_is_a_repeated_line() {
    let fleet = Fleet::new();
    let work = fleet.repo(
        "dd",
        &[("main.tf", trail_tf("a")), ("sub/main.tf", trail_tf("b"))],
    );
    let remote = display(&fleet.remote("dd"));
    for (second, line) in [
        ("./dd".to_owned(), 2),
        ("dd/".to_owned(), 2),
        (display(&work), 2),
        // Another directory of the same repository: the same working tree and branch.
        ("dd/sub".to_owned(), 2),
    ] {
        let repos = fleet.root().join("repos.txt");
        std::fs::write(&repos, format!("dd\n{second}\n")).unwrap();
        let output = fleet.ctfix(fleet.root(), &["--repos", &display(&repos)]);
        assert_eq!(output.status.code(), Some(2), "{second}");
        let stderr = stderr_of(&output);
        assert!(
            stderr.contains(&format!("repos.txt:{line}:")) && stderr.contains("already on line 1"),
            "{second}: {stderr}"
        );
    }
    let repos = fleet.root().join("urls.txt");
    let bare = remote.trim_end_matches(".git");
    std::fs::write(&repos, format!("file://{remote}\nfile://{bare}/\n")).unwrap();
    let output = fleet.ctfix(fleet.root(), &["--repos", &display(&repos)]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr_of(&output).contains("already on line 1"));
}

/// README: the token "never appears in any output, error or body" — also when it is part of
/// a repository's URL in `--repos`, in every format, and not in the clone's directory name.
#[test]
fn a_token_in_a_repository_url_is_never_printed() {
    let fleet = Fleet::new();
    let secret = "ghp_URLTOKENSECRET999";
    let repos = fleet.root().join("repos.txt");
    // Nothing listens on port 1: the clone fails at once, with an error that names the URL.
    std::fs::write(
        &repos,
        format!("https://x-access-token:{secret}@127.0.0.1:1/acme/x.git\nhttps://{secret}@127.0.0.1:1/acme/y.git\n"),
    )
    .unwrap();
    let workdir = fleet.root().join("clones");
    for format in ["text", "json", "sarif"] {
        let output = fleet.ctfix(
            fleet.root(),
            &[
                "--repos",
                &display(&repos),
                "--workdir",
                &display(&workdir),
                "--format",
                format,
            ],
        );
        assert_eq!(output.status.code(), Some(2), "{format}: the clones fail");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            stderr_of(&output)
        );
        assert!(!all.contains(secret), "{format}: {all}");
        assert!(
            all.contains("https://***@127.0.0.1:1/acme/x.git"),
            "{format}: {all}"
        );
    }
    let leaked = walkdir::WalkDir::new(fleet.root())
        .into_iter()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().contains(secret))
        .count();
    assert_eq!(leaked, 0, "a path holds the token");
}

/// Ctrl-C part-way: the repository in progress finishes, no other starts; each repository
/// is untouched or complete; running again finishes the rest and redoes nothing.
#[test]
fn an_interrupted_run_leaves_each_repository_untouched_or_complete_and_a_rerun_finishes() {
    let fleet = Fleet::new();
    let names = names(6);
    for name in &names {
        fleet.repo(name, &[("main.tf", trail_tf(name))]);
    }
    let mut args = vec![
        "--apply",
        "--yes",
        "--branch",
        BRANCH,
        "--push",
        "--no-diff",
        "--jobs",
        "1",
    ];
    args.extend(names.iter().map(String::as_str));
    let child = fleet
        .ctfix_command(fleet.root(), &args)
        .env("CTFIX_FLEET_TEST_DELAY_MS", "700")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the first repository is complete (the machine may be slow to start).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while fleet.remote_branch(&names[0]).is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let table = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(2),
        "{table}{}",
        stderr_of(&output)
    );
    assert!(table.contains("not-started"), "{table}");
    assert!(table.contains("run the same command again"), "{table}");

    let mut complete = 0;
    for name in &names {
        let work = fleet.root().join(name);
        match fleet.remote_branch(name) {
            Some(_) => {
                complete += 1;
                fleet.assert_branch_commit(name, &["main.tf"]);
                assert_eq!(fleet.git(&work, &["status", "--porcelain"]), "");
            }
            None => {
                // Untouched: on main, the file as committed, no branch made.
                assert_eq!(fleet.git(&work, &["branch", "--show-current"]), "main");
                assert_eq!(fleet.git(&work, &["status", "--porcelain"]), "", "{name}");
                assert_eq!(
                    fleet.git(&work, &["branch", "--list", BRANCH]),
                    "",
                    "{name}"
                );
            }
        }
    }
    assert!(
        (1..names.len()).contains(&complete),
        "{complete} of {} complete:\n{table}",
        names.len()
    );

    let rerun = fleet.ctfix(fleet.root(), &args);
    let table = String::from_utf8_lossy(&rerun.stdout);
    assert_eq!(rerun.status.code(), Some(0), "{table}{}", stderr_of(&rerun));
    assert_eq!(table.matches("up-to-date").count(), complete, "{table}");
    for name in &names {
        fleet.assert_branch_commit(name, &["main.tf"]);
    }
}

/// The same repositories fixed with `--jobs 1` and `--jobs 4` end with the same trees on the
/// same branches and the same report (but for commit hashes, which hold the time).
#[test]
fn jobs_1_and_jobs_4_produce_identical_repositories_and_reports() {
    let mut outcomes = Vec::new();
    for jobs in ["1", "4"] {
        let fleet = Fleet::new();
        let names = names(8);
        for (i, name) in names.iter().enumerate() {
            let mut files = vec![("main.tf", trail_tf(name))];
            if i % 3 == 0 {
                files.push(("modules/audit/trail.tf", trail_tf(&format!("{name}_audit"))));
            }
            if i == 5 {
                files[0].1.push_str("broken {\n");
            }
            fleet.repo(name, &files);
        }
        let mut args = vec![
            "--apply", "--yes", "--branch", BRANCH, "--push", "--format", "json", "--jobs", jobs,
        ];
        args.extend(names.iter().map(String::as_str));
        let output = fleet.ctfix(fleet.root(), &args);
        assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
        let mut report = String::from_utf8(output.stdout).unwrap();
        let mut trees = Vec::new();
        for name in &names {
            if let Some(commit) = fleet.remote_branch(name) {
                report = report.replace(&commit, "<commit>");
                trees.push(fleet.git(
                    &fleet.remote(name),
                    &["rev-parse", &format!("{BRANCH}^{{tree}}")],
                ));
            }
        }
        let root = std::fs::canonicalize(fleet.root()).unwrap();
        let report = report.replace(&display(&root), "<root>");
        outcomes.push((report, trees));
    }
    assert_eq!(outcomes[0].1.len(), 7);
    assert_eq!(outcomes[0].1, outcomes[1].1, "the same trees");
    assert_eq!(outcomes[0].0, outcomes[1].0, "the same report");
}

/// Each repository of a fleet run uses its own `.ctfix.toml` (committed in it): one tags its
/// generated keys, the other names a deletion window; a repository without one gets the
/// defaults.
#[test]
fn each_repository_uses_its_own_configuration() {
    let fleet = Fleet::new();
    let tagged = fleet.repo(
        "tagged",
        &[
            ("main.tf", trail_tf("tagged")),
            (
                ".ctfix.toml",
                "[generated-key]\ntags = { team = \"platform\" }\n".to_owned(),
            ),
        ],
    );
    let windowed = fleet.repo(
        "windowed",
        &[
            ("main.tf", trail_tf("windowed")),
            (
                ".ctfix.toml",
                "[generated-key]\ndeletion-window-days = 7\n".to_owned(),
            ),
        ],
    );
    let plain = fleet.repo("plain", &[("main.tf", trail_tf("plain"))]);
    let output = fleet.ctfix(
        fleet.root(),
        &[
            "--apply", "--yes", "--branch", BRANCH, "--format", "json", "tagged", "windowed",
            "plain",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    // The fixes are on the branch; each checkout is back on main.
    let read = |dir: &Path| fleet.git(dir, &["show", &format!("{BRANCH}:main.tf")]);
    let (tagged, windowed, plain) = (read(&tagged), read(&windowed), read(&plain));
    assert!(tagged.contains("team = \"platform\""), "{tagged}");
    assert!(tagged.contains("deletion_window_in_days = 30"), "{tagged}");
    assert!(
        windowed.contains("deletion_window_in_days = 7"),
        "{windowed}"
    );
    assert!(!windowed.contains("platform"), "{windowed}");
    assert!(plain.contains("deletion_window_in_days = 30"), "{plain}");
    assert!(!plain.contains("platform"), "{plain}");
}
