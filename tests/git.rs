//! Git flows through the built binary, on real repositories made in temp dirs: the guard for
//! uncommitted work, `--commit` / `--branch`, `--push` to a bare remote, the pull-request
//! body. The `git` command sets the repositories up and reads them back, so what ctfix
//! records is checked by the tool users run.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::*;

/// `git` with a configuration of its own: no user or system settings leak in.
fn git(dir: &Path, home: &Path, args: &[&str]) -> Output {
    let output = Command::new("git")
        .current_dir(dir)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("GIT_AUTHOR_NAME")
        .env_remove("GIT_AUTHOR_EMAIL")
        .args(args)
        .output()
        .expect("run git (it must be installed for these tests)");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn git_text(dir: &Path, home: &Path, args: &[&str]) -> String {
    String::from_utf8(git(dir, home, args).stdout)
        .unwrap()
        .trim_end()
        .to_owned()
}

/// A repository holding the demo tree, committed on `main`, with an identity configured in
/// the repository; `home` is an empty home directory for both git and ctfix.
struct Repo {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    root: PathBuf,
}

impl Repo {
    fn new() -> Repo {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        let root = tmp.path().join("infra");
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
        Repo {
            _tmp: tmp,
            home,
            root,
        }
    }

    fn git(&self, args: &[&str]) -> String {
        git_text(&self.root, &self.home, args)
    }

    /// Runs ctfix with `args` and checks that it refused before writing: exit status 2, a
    /// message containing `reason` on stderr, and every file as it was. Returns stderr.
    fn assert_refused(&self, args: &[&str], reason: &str) -> String {
        let before = snapshot(&self.root);
        let output = self.ctfix(args);
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
        assert_eq!(snapshot(&self.root), before, "{args:?} wrote");
        stderr
    }

    /// ctfix run in the repository's root, with the same home directory as git.
    fn ctfix(&self, args: &[&str]) -> Output {
        ctfix()
            .current_dir(&self.root)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", &self.home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env_remove("GIT_AUTHOR_NAME")
            .env_remove("GIT_AUTHOR_EMAIL")
            .args(args)
            .output()
            .unwrap()
    }
}

/// The demo files ctfix changes.
const CHANGED: [&str; 3] = [
    "live/prod/cloudtrail.tf",
    "live/security/trails.tf",
    "live/staging/main.tf",
];

#[test]
fn branch_commits_exactly_the_fixed_files() {
    let repo = Repo::new();
    let base = repo.git(&["rev-parse", "HEAD"]);
    let output = repo.ctfix(&["--apply", "--yes", "--branch", "ctfix/cloudtrail-kms", "."]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("Committed 3 files on branch ctfix/cloudtrail-kms ("),
        "{stdout}"
    );

    assert_eq!(
        repo.git(&["rev-parse", "--abbrev-ref", "HEAD"]),
        "ctfix/cloudtrail-kms"
    );
    assert_eq!(
        repo.git(&["rev-parse", "HEAD~1"]),
        base,
        "one commit on top"
    );
    assert_eq!(repo.git(&["rev-parse", "main"]), base, "main is untouched");
    assert_eq!(
        repo.git(&["status", "--porcelain"]),
        "",
        "nothing left over"
    );
    let files = repo.git(&["diff", "--name-only", "HEAD~1", "HEAD"]);
    assert_eq!(files.lines().collect::<Vec<_>>(), CHANGED);
    assert_eq!(
        repo.git(&["log", "-1", "--format=%s"]),
        ctfix::pull_request::TITLE
    );
    let body = repo.git(&["log", "-1", "--format=%b"]);
    assert!(
        body.contains("- aws_cloudtrail.org in live/prod/cloudtrail.tf:"),
        "{body}"
    );
    assert_eq!(
        repo.git(&["log", "-1", "--format=%an <%ae>"]),
        "Platform Bot <bot@example.com>"
    );
    // What was committed is what is on disk, and it is the fix.
    for file in CHANGED {
        let committed = repo.git(&["show", &format!("HEAD:{file}")]);
        let on_disk = std::fs::read_to_string(repo.root.join(file)).unwrap();
        assert_eq!(committed, on_disk.trim_end(), "{file}");
        assert!(committed.contains("kms_key_id"), "{file}");
    }
    // A second run finds nothing to fix.
    let again = repo.ctfix(&["."]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr_of(&again));
}

#[test]
fn commit_leaves_the_users_staged_and_untracked_work_alone() {
    let repo = Repo::new();
    std::fs::write(repo.root.join("live/prod/s3.tf"), "# staged by the user\n").unwrap();
    repo.git(&["add", "live/prod/s3.tf"]);
    std::fs::write(repo.root.join("notes.txt"), "untracked\n").unwrap();

    let output = repo.ctfix(&["--apply", "--yes", "--commit", "--format", "json", "."]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["commit"]["branch"], "main");
    assert_eq!(json["commit"]["files"], 3);
    assert_eq!(
        json["commit"]["commit"].as_str().unwrap(),
        repo.git(&["rev-parse", "HEAD"])
    );

    let files = repo.git(&["diff", "--name-only", "HEAD~1", "HEAD"]);
    assert_eq!(files.lines().collect::<Vec<_>>(), CHANGED);
    assert_eq!(
        repo.git(&["status", "--porcelain"]),
        "M  live/prod/s3.tf\n?? notes.txt",
        "the user's staged change stays staged, the untracked file untracked"
    );
}

#[test]
fn uncommitted_work_in_a_file_to_fix_is_refused_unless_allowed() {
    let repo = Repo::new();
    let file = repo.root.join("live/staging/main.tf");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("\n# work in progress\n");
    std::fs::write(&file, &text).unwrap();

    let stderr = repo.assert_refused(&["--apply", "--yes", "."], "live/staging/main.tf");
    assert!(stderr.contains("--allow-dirty"), "{stderr}");
    assert!(stderr.contains("nothing was written"), "{stderr}");

    // Committing would sweep the user's work into ctfix's commit: refused even when allowed.
    repo.assert_refused(
        &["--apply", "--yes", "--allow-dirty", "--branch", "fix", "."],
        "cannot commit",
    );
    assert_eq!(repo.git(&["branch", "--list", "fix"]), "");

    let output = repo.ctfix(&["--apply", "--yes", "--allow-dirty", "."]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let after = std::fs::read_to_string(&file).unwrap();
    assert!(after.contains("kms_key_id") && after.contains("# work in progress"));
}

#[test]
fn files_outside_a_repository_need_no_guard_but_cannot_be_committed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("plain");
    write_trail_module(&dir, "plain");
    let before = snapshot(&dir);
    let output = ctfix()
        .args(["--apply", "--yes", "--commit"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr_of(&output).contains("is not inside a git repository"),
        "{}",
        stderr_of(&output)
    );
    assert_eq!(snapshot(&dir), before);

    let output = ctfix()
        .args(["--apply", "--yes"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
}

#[test]
fn an_existing_branch_is_refused_before_writing() {
    let repo = Repo::new();
    repo.git(&["branch", "taken"]);
    repo.assert_refused(
        &["--apply", "--yes", "--branch", "taken", "."],
        "branch taken already exists",
    );
    repo.assert_refused(
        &["--apply", "--yes", "--branch", "bad..name", "."],
        "not a valid branch name",
    );
}

#[test]
fn no_identity_is_refused_before_writing() {
    let repo = Repo::new();
    repo.git(&["config", "--unset", "user.name"]);
    repo.git(&["config", "--unset", "user.email"]);
    repo.assert_refused(
        &["--apply", "--yes", "--commit", "."],
        "set user.name and user.email",
    );

    // GIT_AUTHOR_NAME / GIT_AUTHOR_EMAIL stand in, as they do for git.
    let output = ctfix()
        .current_dir(&repo.root)
        .env("HOME", &repo.home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "CI")
        .env("GIT_AUTHOR_EMAIL", "ci@example.com")
        .args(["--apply", "--yes", "--commit", "."])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(
        repo.git(&["log", "-1", "--format=%an <%ae>"]),
        "CI <ci@example.com>"
    );
}

#[test]
fn push_sends_the_branch_and_sets_its_upstream() {
    let repo = Repo::new();
    let remote = repo.root.parent().unwrap().join("remote.git");
    git(
        repo.root.parent().unwrap(),
        &repo.home,
        &["init", "-q", "--bare", remote.to_str().unwrap()],
    );
    repo.git(&["remote", "add", "origin", remote.to_str().unwrap()]);
    let body = repo.root.parent().unwrap().join("pr.md");
    let output = repo.ctfix(&[
        "--apply",
        "--yes",
        "--branch",
        "ctfix/kms",
        "--push",
        "--pr-body",
        body.to_str().unwrap(),
        repo.root.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("and pushed it to origin."), "{stdout}");

    let local = repo.git(&["rev-parse", "HEAD"]);
    let pushed = git_text(&remote, &repo.home, &["rev-parse", "refs/heads/ctfix/kms"]);
    assert_eq!(pushed, local);
    assert_eq!(
        repo.git(&["rev-parse", "--abbrev-ref", "ctfix/kms@{upstream}"]),
        "origin/ctfix/kms"
    );

    // The body names the trails with paths inside the repository, even though ctfix was
    // given an absolute path, and the commit it describes.
    let body = std::fs::read_to_string(&body).unwrap();
    assert!(
        body.contains("| `aws_cloudtrail.org` | `live/prod/cloudtrail.tf:2` |"),
        "{body}"
    );
    assert!(body.contains(&format!("commit {}", &local[..12])), "{body}");
    assert!(body.contains("CKV_AWS_35"));
}

#[test]
fn someone_elses_branch_on_the_remote_is_refused_before_writing() {
    let repo = Repo::new();
    let remote = repo.root.parent().unwrap().join("remote.git");
    git(
        repo.root.parent().unwrap(),
        &repo.home,
        &["init", "-q", "--bare", remote.to_str().unwrap()],
    );
    repo.git(&["remote", "add", "origin", remote.to_str().unwrap()]);
    // Someone else's branch of the same name is on the remote already.
    repo.git(&["commit", "-q", "--allow-empty", "-m", "other"]);
    repo.git(&["push", "-q", "origin", "HEAD:refs/heads/ctfix/kms"]);
    repo.git(&["reset", "-q", "--hard", "HEAD~1"]);

    let output = repo.ctfix(&["--apply", "--yes", "--branch", "ctfix/kms", "--push", "."]);
    // None of its commits is ctfix's (no Generated-by trailer): not ctfix's to replace.
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("branch ctfix/kms already exists") && stderr.contains("is not ctfix's"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was written"), "{stderr}");
    assert_eq!(repo.git(&["rev-parse", "--abbrev-ref", "HEAD"]), "main");
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
}

#[test]
fn line_ending_filters_apply_as_git_add_would() {
    // core.autocrlf: the working tree has CRLF, the repository LF. The commit must hold LF
    // lines, or every line of the file would show as changed.
    let repo = Repo::new();
    repo.git(&["config", "core.autocrlf", "true"]);
    let file = repo.root.join("live/staging/main.tf");
    let crlf = std::fs::read_to_string(&file)
        .unwrap()
        .replace('\n', "\r\n");
    std::fs::write(&file, crlf).unwrap();
    repo.git(&["add", "live/staging/main.tf"]);
    assert_eq!(
        repo.git(&["status", "--porcelain"]),
        "",
        "CRLF is clean here"
    );

    let output = repo.ctfix(&["--apply", "--yes", "--commit", "."]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .contains("kms_key_id"));
    let blob = git(
        &repo.root,
        &repo.home,
        &["show", "HEAD:live/staging/main.tf"],
    )
    .stdout;
    assert!(!blob.contains(&b'\r'), "the blob is normalised to LF");
    let stat = repo.git(&[
        "diff",
        "--numstat",
        "HEAD~1",
        "HEAD",
        "--",
        "live/staging/main.tf",
    ]);
    let removed: usize = stat.split_whitespace().nth(1).unwrap().parse().unwrap();
    // The one line the fix replaces (`kms_key_id = ""`); a CRLF blob would replace them all.
    assert_eq!(removed, 1, "{stat}");
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
}

#[test]
fn a_filter_driver_ctfix_cannot_run_is_refused_before_writing() {
    // libgit2 runs no filter drivers: committing without this one would store what the
    // filter keeps out of the repository (git-crypt: the plain text).
    let repo = Repo::new();
    repo.git(&["config", "filter.tag.clean", "sed s/LOCALONLY/committed/"]);
    repo.git(&["config", "filter.tag.smudge", "cat"]);
    std::fs::write(repo.root.join(".gitattributes"), "*.tf filter=tag\n").unwrap();
    repo.git(&["add", ".gitattributes"]);
    repo.git(&["commit", "-q", "-m", "filter"]);
    repo.assert_refused(
        &["--apply", "--yes", "--branch", "fix", "."],
        "git filter \"tag\"",
    );
    assert_eq!(repo.git(&["branch", "--list", "fix"]), "");
}

#[test]
fn an_ignored_file_is_never_added_to_a_commit() {
    let repo = Repo::new();
    std::fs::write(repo.root.join(".gitignore"), "live/staging/\n").unwrap();
    repo.git(&["rm", "-q", "--cached", "-r", "live/staging"]);
    repo.git(&["add", ".gitignore"]);
    repo.git(&["commit", "-q", "-m", "ignore staging"]);
    repo.assert_refused(&["--apply", "--yes", "--commit", "."], "is ignored by git");
    // Without a commit, an ignored file is not guarded: git does not look after it.
    let output = repo.ctfix(&["--apply", "--yes", "."]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
}

#[test]
fn push_problems_known_in_advance_are_refused_before_writing_and_reported_in_json() {
    let repo = Repo::new();
    let before = snapshot(&repo.root);
    let output = repo.ctfix(&[
        "--apply", "--yes", "--branch", "fix", "--push", "--format", "json", ".",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let message = json["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("no remote named origin"), "{message}");
    assert!(message.contains("nothing was written"), "{message}");
    assert_eq!(json["summary"]["files_written"], 0);
    assert_eq!(
        json["summary"]["fixes_selected"], 3,
        "the findings are still reported"
    );
    assert_eq!(snapshot(&repo.root), before);

    repo.git(&["checkout", "-q", "--detach"]);
    repo.assert_refused(
        &["--apply", "--yes", "--commit", "--push", "."],
        "detached HEAD",
    );
    repo.assert_refused(
        &["--apply", "--yes", "--pr-body", "no/such/dir/pr.md", "."],
        "pull-request body",
    );
}

#[test]
fn a_relative_remote_path_is_taken_from_the_top_of_the_working_tree() {
    // `git remote add origin ../remote.git` means relative to the repository, wherever
    // ctfix runs from.
    let repo = Repo::new();
    let remote = repo.root.parent().unwrap().join("remote.git");
    git(
        repo.root.parent().unwrap(),
        &repo.home,
        &["init", "-q", "--bare", remote.to_str().unwrap()],
    );
    repo.git(&["remote", "add", "origin", "../remote.git"]);
    let output = ctfix()
        .current_dir(repo.root.join("modules"))
        .env("HOME", &repo.home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .args(["--apply", "--yes", "--branch", "fix", "--push", "../live"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(
        git_text(&remote, &repo.home, &["rev-parse", "refs/heads/fix"]),
        repo.git(&["rev-parse", "HEAD"])
    );
}

#[test]
fn a_rerun_after_a_failed_push_pushes_ctfixs_commit() {
    // A bot's workspace keeps the branch when the push fails (here: the remote is not there
    // yet); the rerun has nothing to write and must still deliver the commit.
    let repo = Repo::new();
    let remote = repo.root.parent().unwrap().join("remote.git");
    repo.git(&["remote", "add", "origin", remote.to_str().unwrap()]);
    let args = ["--apply", "--yes", "--branch", "ctfix/kms", "--push", "."];
    let output = repo.ctfix(&args);
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains("the commit was made but not pushed"));

    git(
        repo.root.parent().unwrap(),
        &repo.home,
        &["init", "-q", "--bare", remote.to_str().unwrap()],
    );
    let output = repo.ctfix(&args);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("and pushed it to origin."));
    let head = repo.git(&["rev-parse", "HEAD"]);
    assert_eq!(
        git_text(&remote, &repo.home, &["rev-parse", "refs/heads/ctfix/kms"]),
        head
    );

    // Someone else's commit on top is not ctfix's to push.
    repo.git(&["commit", "-q", "--allow-empty", "-m", "reviewer's change"]);
    let output = repo.ctfix(&args);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(
        git_text(&remote, &repo.home, &["rev-parse", "refs/heads/ctfix/kms"]),
        head
    );
}

#[test]
fn staged_work_in_a_file_to_fix_is_refused() {
    let repo = Repo::new();
    let file = repo.root.join("live/prod/cloudtrail.tf");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("\n# staged, not committed\n");
    std::fs::write(&file, &text).unwrap();
    repo.git(&["add", "live/prod/cloudtrail.tf"]);
    let stderr = repo.assert_refused(&["--apply", "--yes", "."], "live/prod/cloudtrail.tf");
    assert!(stderr.contains("--allow-dirty"), "{stderr}");
    assert_eq!(
        repo.git(&["status", "--porcelain"]),
        "M  live/prod/cloudtrail.tf"
    );
}

#[test]
fn an_untracked_file_to_fix_is_refused() {
    let repo = Repo::new();
    write_trail_module(&repo.root.join("live/new"), "fresh");
    let stderr = repo.assert_refused(&["--apply", "--yes", "."], "live/new/main.tf");
    assert!(stderr.contains("--allow-dirty"), "{stderr}");
    // Allowed: written, and still untracked.
    let output = repo.ctfix(&["--apply", "--yes", "--allow-dirty", "."]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(std::fs::read_to_string(repo.root.join("live/new/main.tf"))
        .unwrap()
        .contains("kms_key_id"));
    assert!(repo
        .git(&["status", "--porcelain"])
        .contains("?? live/new/"));
}

/// What ctfix does when one `--commit` run spans two repositories: a fleet run, one commit
/// per repository (each one's files only), and a clean working tree in each.
fn assert_several_repositories_outcome(output: &Output, first: &Repo, second: &Repo) {
    let stderr = stderr_of(output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    for repo in [first, second] {
        assert_eq!(
            repo.git(&["status", "--porcelain"]),
            "",
            "everything committed"
        );
        assert_eq!(
            repo.git(&["rev-list", "--count", "HEAD"]),
            "2",
            "one commit each"
        );
        let files = repo.git(&["show", "--name-only", "--format=", "HEAD"]);
        assert!(files.contains("cloudtrail.tf"), "{files}");
    }
}

#[test]
fn one_commit_run_over_several_repositories() {
    let (first, second) = (Repo::new(), Repo::new());
    let output = ctfix()
        .current_dir(first.root.parent().unwrap().parent().unwrap())
        .env("HOME", &first.home)
        .env("XDG_CONFIG_HOME", &first.home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .args(["--apply", "--yes", "--commit"])
        .arg(&first.root)
        .arg(&second.root)
        .output()
        .unwrap();
    assert_several_repositories_outcome(&output, &first, &second);
}

/// The guard reads each repository's status once for all the files to change: only the
/// files with uncommitted work are named, and ignored files count as clean.
#[test]
fn the_guard_names_exactly_the_files_with_uncommitted_work() {
    let repo = Repo::new();
    std::fs::write(repo.root.join(".gitignore"), "scratch/\n").unwrap();
    repo.git(&["add", ".gitignore"]);
    repo.git(&["commit", "-q", "-m", "ignore scratch"]);
    write_trail_module(&repo.root.join("scratch"), "scratch");
    let file = repo.root.join("live/prod/cloudtrail.tf");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("\n# not committed\n");
    std::fs::write(&file, &text).unwrap();
    let stderr = repo.assert_refused(&["--apply", "--yes", "."], "live/prod/cloudtrail.tf");
    assert!(!stderr.contains("scratch"), "{stderr}");
    assert!(!stderr.contains("live/staging"), "{stderr}");
    // Committed: the ignored module is fixed with the others.
    repo.git(&["commit", "-q", "-am", "a comment"]);
    let output = repo.ctfix(&["--apply", "--yes", "."]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(std::fs::read_to_string(repo.root.join("scratch/main.tf"))
        .unwrap()
        .contains("kms_key_id"));
}

/// A shallow clone (actions/checkout's default) lacks the history ctfix reads to judge its
/// branch once the base moved: a clear refusal before anything is written, not "object not
/// found".
#[test]
fn a_shallow_clone_is_refused_with_what_to_fetch() {
    let repo = Repo::new();
    let parent = repo.root.parent().unwrap().to_path_buf();
    git(
        &parent,
        &repo.home,
        &["init", "-q", "--bare", "-b", "main", "remote.git"],
    );
    repo.git(&["remote", "add", "origin", "../remote.git"]);
    repo.git(&["push", "-q", "origin", "main"]);
    let first = repo.ctfix(&["--apply", "--yes", "--branch", "fix", "--push", "-q", "."]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr_of(&first));
    // The base moves on.
    repo.git(&["switch", "-q", "main"]);
    std::fs::write(repo.root.join("README.md"), "infra\n").unwrap();
    repo.git(&["add", "README.md"]);
    repo.git(&["commit", "-q", "-m", "docs"]);
    repo.git(&["push", "-q", "origin", "main"]);
    // Next week's checkout: one commit deep.
    let remote = format!("file://{}", parent.join("remote.git").display());
    git(
        &parent,
        &repo.home,
        &["clone", "-q", "--depth", "1", &remote, "shallow"],
    );
    let shallow = Repo {
        _tmp: tempfile::tempdir().unwrap(),
        home: repo.home.clone(),
        root: parent.join("shallow"),
    };
    shallow.git(&["config", "user.name", "Platform Bot"]);
    shallow.git(&["config", "user.email", "bot@example.com"]);
    let stderr = shallow.assert_refused(
        &["--apply", "--yes", "--branch", "fix", "--push", "."],
        "shallow clone",
    );
    assert!(stderr.contains("git fetch --unshallow"), "{stderr}");
    assert!(
        shallow.root.join(".git/shallow").is_file(),
        "the clone no longer knows it is shallow"
    );
}

/// CI checks out a detached HEAD: with `--base` naming the branch at that commit the bot's
/// rules apply as on the branch itself (created, then updated after the base moved); without
/// it, a clear refusal instead of a branch made from HEAD that the push then rejects.
#[test]
fn a_detached_head_is_the_base_named_by_base() {
    let repo = Repo::new();
    let parent = repo.root.parent().unwrap().to_path_buf();
    git(
        &parent,
        &repo.home,
        &["init", "-q", "--bare", "-b", "main", "remote.git"],
    );
    repo.git(&["remote", "add", "origin", "../remote.git"]);
    repo.git(&["push", "-q", "-u", "origin", "main"]);
    let state = |output: &Output| -> String {
        assert!(output.status.code().unwrap() < 2, "{}", stderr_of(output));
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        json["commit"]["branch_state"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    repo.git(&["checkout", "-q", "--detach", "main"]);
    repo.assert_refused(
        &["--apply", "--yes", "--branch", "fix", "--push", "."],
        "HEAD is detached",
    );
    let bot = [
        "--apply", "--yes", "--branch", "fix", "--push", "--base", "main", "--format", "json", ".",
    ];
    assert_eq!(state(&repo.ctfix(&bot)), "created");
    // The base moves on; next week's detached checkout of it.
    repo.git(&["switch", "-q", "main"]);
    std::fs::write(repo.root.join("README.md"), "infra\n").unwrap();
    repo.git(&["add", "README.md"]);
    repo.git(&["commit", "-q", "-m", "docs"]);
    repo.git(&["push", "-q", "origin", "main"]);
    repo.git(&["checkout", "-q", "--detach", "main"]);
    assert_eq!(state(&repo.ctfix(&bot)), "updated");
    let remote = parent.join("remote.git");
    assert_eq!(
        git_text(&remote, &repo.home, &["rev-parse", "fix^"]),
        git_text(&remote, &repo.home, &["rev-parse", "main"]),
        "rebuilt on the moved base"
    );
}
