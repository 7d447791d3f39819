//! Stage 7: version control, with libgit2 (no `git` executable needed).
//!
//! Two jobs. Before `--apply` writes, [`uncommitted`] lists the files to be changed that hold
//! work git does not have yet, so ctfix never mixes its edit into a user's unsaved work
//! (cargo fix's rule; `--allow-dirty` overrides). After the writes, [`commit`] records exactly
//! the written files in one commit — on a new branch with `--branch` — and [`push`] sends that
//! branch to a remote, for bots that open pull requests.
//!
//! The commit is built from `HEAD`'s tree plus the written files, never from the index, so
//! whatever else the user has staged stays staged and out of ctfix's commit.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use git2::{BranchType, Repository, Status as GitStatus};

pub use crate::model::Committed;

/// Something version control refused or failed to do; the message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum VcsError {
    /// A commit was asked for a file outside any git repository.
    #[error(
        "{} is not inside a git repository; --commit and --branch need one",
        crate::render::display_path(path)
    )]
    NotARepository {
        /// The file.
        path: PathBuf,
    },
    /// The files to commit live in more than one repository.
    #[error("the files to change live in {} git repositories ({}); give each repository as its own path, or list them in --repos FILE, for one commit per repository", roots.len(), list(roots))]
    SeveralRepositories {
        /// The working directories.
        roots: Vec<PathBuf>,
    },
    /// Any other refusal, with its reason.
    #[error("{0}")]
    Refused(String),
    /// libgit2 failed.
    #[error("git: {action}: {source}")]
    Git {
        /// What ctfix was doing.
        action: String,
        /// libgit2's error.
        source: git2::Error,
    },
}

fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| crate::render::display_path(p))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Adds what ctfix was doing to a libgit2 error.
pub(crate) trait Doing<T> {
    fn doing(self, action: impl Into<String>) -> Result<T, VcsError>;
}

impl<T> Doing<T> for Result<T, git2::Error> {
    fn doing(self, action: impl Into<String>) -> Result<T, VcsError> {
        self.map_err(|source| VcsError::Git {
            action: action.into(),
            source,
        })
    }
}

/// A file inside a repository: the repository's working directory and the file's path in it
/// (with `/`, as git stores it).
pub(crate) struct Tracked {
    root: PathBuf,
    relative: String,
}

/// Finds the repositories around files, opening each repository once: opening one reads its
/// configuration and index, which per file made `--apply` inside a repository slower than
/// all the rest of the run (1,000 fixed files: 1.4 s against 0.5 s outside one).
#[derive(Default)]
struct Locator {
    /// Each repository met: its git directory, the repository and its canonical working
    /// directory (`None` when bare).
    repos: Vec<(PathBuf, Repository, Option<PathBuf>)>,
}

impl Locator {
    /// The repository around `path` (a file), by index into `repos`, and the file's place in
    /// it; `None` outside any repository.
    fn locate(&mut self, path: &Path) -> Result<Option<(usize, Tracked)>, VcsError> {
        let absolute = std::fs::canonicalize(path).map_err(|error| {
            VcsError::Refused(format!(
                "{}: cannot resolve the path: {error}",
                crate::render::display_path(path)
            ))
        })?;
        let Some(dir) = absolute.parent() else {
            return Ok(None);
        };
        let gitdir = match Repository::discover_path(dir, std::iter::empty::<&Path>()) {
            Ok(gitdir) => gitdir,
            Err(error) if error.code() == git2::ErrorCode::NotFound => return Ok(None),
            Err(source) => {
                return Err(VcsError::Git {
                    action: format!("opening the repository around {}", dir.display()),
                    source,
                })
            }
        };
        let index = match self.repos.iter().position(|(known, ..)| *known == gitdir) {
            Some(index) => index,
            None => {
                let repo = Repository::open(&gitdir)
                    .doing(format!("opening the repository around {}", dir.display()))?;
                let root = repo
                    .workdir()
                    .map(|w| std::fs::canonicalize(w).unwrap_or_else(|_| w.to_path_buf()));
                self.repos.push((gitdir, repo, root));
                self.repos.len() - 1
            }
        };
        let Some(root) = &self.repos[index].2 else {
            return Ok(None);
        };
        let Ok(inside) = absolute.strip_prefix(root) else {
            return Ok(None);
        };
        let relative = inside
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        Ok(Some((
            index,
            Tracked {
                root: root.clone(),
                relative,
            },
        )))
    }

    fn repo(&self, index: usize) -> &Repository {
        &self.repos[index].1
    }

    /// Takes repository `index` out (the others stay).
    fn take(mut self, index: usize) -> Repository {
        self.repos.swap_remove(index).1
    }
}

/// The files among `paths` that hold uncommitted work: modified, staged, untracked or in
/// conflict. Files outside any git repository are not listed (there is nothing to lose to a
/// commit there), nor are ignored files (git does not look after them either way).
pub fn uncommitted(paths: &[&Path]) -> Result<Vec<PathBuf>, VcsError> {
    // Each repository's files are looked up in one status pass (as a list of exact paths,
    // which libgit2 searches by bisection): a pass per file walked the file's directory again
    // each time.
    let mut locator = Locator::default();
    let mut by_repo: BTreeMap<usize, Vec<(PathBuf, String)>> = BTreeMap::new();
    for path in paths {
        if let Some((repo, tracked)) = locator.locate(path)? {
            by_repo
                .entry(repo)
                .or_default()
                .push((path.to_path_buf(), tracked.relative));
        }
    }
    let mut dirty = Vec::new();
    for (repo, files) in by_repo {
        let mut options = git2::StatusOptions::new();
        options
            .include_untracked(true)
            .recurse_untracked_dirs(true)
            .include_ignored(false)
            .disable_pathspec_match(true);
        for (_, relative) in &files {
            options.pathspec(relative);
        }
        let statuses = locator
            .repo(repo)
            .statuses(Some(&mut options))
            .doing("reading the status of the files to change")?;
        let changed: BTreeSet<String> = statuses
            .iter()
            .filter(|entry| {
                let status = entry.status();
                !status.is_empty() && !status.contains(GitStatus::IGNORED)
            })
            .filter_map(|entry| entry.path().map(str::to_owned))
            .collect();
        dirty.extend(
            files
                .into_iter()
                .filter(|(_, relative)| changed.contains(relative.as_str()))
                .map(|(path, _)| path),
        );
    }
    Ok(dirty)
}

/// A commit checked in advance: everything that could refuse has been looked at, before any
/// file is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedCommit {
    root: PathBuf,
    branch: Option<String>,
    files: Vec<(PathBuf, String)>,
    push: Option<PushTarget>,
    /// Replace an existing branch of ctfix's own (a re-run), pushing with this lease.
    replace: Option<Lease>,
}

/// Where the remote branch stood when ctfix read it: a push that replaces the branch goes
/// through only if it still stands there (git's `--force-with-lease`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// The remote branch's commit, `None` when the remote had no such branch.
    pub seen: Option<git2::Oid>,
}

impl PreparedCommit {
    /// The repository's working directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Lets [`commit`] move the existing branch (ctfix's own, checked by the caller) to the
    /// new commit, and [`push`] replace the remote branch under `lease`.
    pub fn replacing(mut self, lease: Lease) -> Self {
        self.replace = Some(lease);
        self
    }
}

/// Checks that `paths` (the files about to be written) can be committed as asked: one
/// repository, no uncommitted work in them, a free and valid name for the new `branch` (if
/// any; `None` commits on the current branch), an author. Call it before writing, so a
/// refusal leaves every file untouched.
///
/// With `push` (a remote's name), the remote must exist and the commit must land on a branch;
/// a remote URL that is a relative path is taken relative to the working directory's top,
/// as git does.
pub fn prepare_commit(
    paths: &[&Path],
    branch: Option<&str>,
    push: Option<&str>,
) -> Result<PreparedCommit, VcsError> {
    prepare(paths, branch, push, false)
}

/// [`prepare_commit`] for a branch that may already exist (`existing`): the caller has
/// judged it ctfix's own and calls [`PreparedCommit::replacing`].
pub fn prepare_rebuild(
    paths: &[&Path],
    branch: &str,
    push: Option<&str>,
) -> Result<PreparedCommit, VcsError> {
    prepare(paths, Some(branch), push, true)
}

fn prepare(
    paths: &[&Path],
    branch: Option<&str>,
    push: Option<&str>,
    existing: bool,
) -> Result<PreparedCommit, VcsError> {
    let mut roots = BTreeSet::new();
    let mut files = Vec::new();
    let mut dirty = Vec::new();
    let mut repository = None;
    let mut locator = Locator::default();
    for path in paths {
        let Some((index, tracked)) = locator.locate(path)? else {
            return Err(VcsError::NotARepository {
                path: path.to_path_buf(),
            });
        };
        let repo = locator.repo(index);
        let status = repo
            .status_file(Path::new(&tracked.relative))
            .doing(format!("reading the status of {}", tracked.relative))?;
        if status.contains(GitStatus::IGNORED) {
            return Err(VcsError::Refused(format!(
                "cannot commit: {} is ignored by git (.gitignore), and ctfix does not add ignored files to a commit",
                crate::render::display_path(path)
            )));
        }
        if !status.is_empty() {
            dirty.push(path.to_path_buf());
        }
        if let Some(filter) = configured_filter(repo, &tracked.relative)? {
            // libgit2 runs only its built-in filters (line endings, ident): a commit made
            // without this one would hold what the filter keeps out (git-crypt: plain text).
            return Err(VcsError::Refused(format!(
                "cannot commit: {} goes through the git filter \"{filter}\" (.gitattributes), which ctfix cannot run; run without --commit/--branch and commit with git",
                crate::render::display_path(path)
            )));
        }
        roots.insert(tracked.root.clone());
        files.push((path.to_path_buf(), tracked.relative));
        repository.get_or_insert(index);
    }
    let repository = repository.map(|index| locator.take(index));
    if roots.len() > 1 {
        return Err(VcsError::SeveralRepositories {
            roots: roots.into_iter().collect(),
        });
    }
    if !dirty.is_empty() {
        // Even with --allow-dirty: the commit would carry the user's unrelated work.
        return Err(VcsError::Refused(format!(
            "cannot commit: {} uncommitted changes that are not ctfix's ({}); commit or stash them first",
            if dirty.len() == 1 { "a file to change has" } else { "files to change have" },
            list(&dirty)
        )));
    }
    let (Some(repo), Some(root)) = (repository, roots.into_iter().next()) else {
        return Err(VcsError::Refused("nothing to commit".to_owned()));
    };
    if let Some(branch) = branch {
        if !git2::Branch::name_is_valid(branch).unwrap_or(false) {
            return Err(VcsError::Refused(format!(
                "{branch:?} is not a valid branch name"
            )));
        }
        if !existing && repo.find_branch(branch, BranchType::Local).is_ok() {
            return Err(VcsError::Refused(format!(
                "branch {branch} already exists in {}; choose another name or delete it",
                root.display()
            )));
        }
    }
    let push = match push {
        None => None,
        Some(remote) => Some(push_target(&repo, &root, branch, remote)?),
    };
    signature(&repo)?;
    Ok(PreparedCommit {
        root,
        branch: branch.map(str::to_owned),
        files,
        push,
        replace: None,
    })
}

/// The filter driver `.gitattributes` assigns to a file, when git's configuration defines it
/// (an undefined driver is ignored by git too).
fn configured_filter(repo: &Repository, relative: &str) -> Result<Option<String>, VcsError> {
    let value = repo
        .get_attr(
            Path::new(relative),
            "filter",
            git2::AttrCheckFlags::default(),
        )
        .doing(format!("reading the attributes of {relative}"))?;
    let git2::AttrValue::String(name) = git2::AttrValue::from_string(value) else {
        return Ok(None);
    };
    let config = repo.config().doing("reading git's configuration")?;
    let defined = ["clean", "process"]
        .iter()
        .any(|kind| config.get_string(&format!("filter.{name}.{kind}")).is_ok());
    Ok(defined.then(|| name.to_owned()))
}

/// Where `--push` sends the commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PushTarget {
    /// The remote's name.
    pub(crate) remote: String,
    /// Its push URL made absolute, when it was a relative path.
    pub(crate) absolute_url: Option<String>,
}

impl PushTarget {
    /// The remote, with a relative path URL made absolute.
    pub(crate) fn open<'r>(&self, repo: &'r Repository) -> Result<git2::Remote<'r>, VcsError> {
        match &self.absolute_url {
            Some(url) => repo.remote_anonymous(url),
            None => repo.find_remote(&self.remote),
        }
        .doing(format!("finding remote {}", self.remote))
    }
}

/// Checks `remote` can be pushed to and resolves a relative path URL against `root`.
pub(crate) fn push_target(
    repo: &Repository,
    root: &Path,
    branch: Option<&str>,
    remote: &str,
) -> Result<PushTarget, VcsError> {
    if branch.is_none() && repo.head_detached().unwrap_or(false) {
        return Err(VcsError::Refused(
            "cannot push a commit on a detached HEAD; use --branch NAME".to_owned(),
        ));
    }
    let found = repo.find_remote(remote).map_err(|_| {
        VcsError::Refused(format!(
            "cannot push: the repository has no remote named {remote} (git remote -v; --remote NAME)"
        ))
    })?;
    let url = found.pushurl().or(found.url()).unwrap_or_default();
    let absolute_url =
        is_relative_path_url(url).then(|| root.join(url).to_string_lossy().into_owned());
    Ok(PushTarget {
        remote: remote.to_owned(),
        absolute_url,
    })
}

/// Whether a remote URL is a relative file path (`../infra.git`), which libgit2 would take
/// relative to the process's directory and git takes relative to the working tree's top.
fn is_relative_path_url(url: &str) -> bool {
    if url.is_empty() || url.contains("://") || Path::new(url).is_absolute() {
        return false;
    }
    // scp-like `host:path` / `user@host:path`: a colon before any slash.
    match (url.find(':'), url.find('/')) {
        (Some(colon), Some(slash)) => colon > slash,
        (Some(_), None) => false,
        _ => true,
    }
}

/// The author and committer: `GIT_AUTHOR_NAME` / `GIT_AUTHOR_EMAIL` when set (as git reads
/// them), else `user.name` / `user.email` from git's configuration.
fn signature(repo: &Repository) -> Result<git2::Signature<'static>, VcsError> {
    let name = std::env::var("GIT_AUTHOR_NAME").ok();
    let email = std::env::var("GIT_AUTHOR_EMAIL").ok();
    if let (Some(name), Some(email)) = (&name, &email) {
        return git2::Signature::now(name, email).doing("making the commit's signature");
    }
    repo.signature().map_err(|_| {
        VcsError::Refused(
            "cannot commit: git does not know who you are; set user.name and user.email (git config), or GIT_AUTHOR_NAME and GIT_AUTHOR_EMAIL".to_owned(),
        )
    })
}

/// Commits those of the prepared files that were `written`, as they are now on disk: creates
/// and checks out the branch if one was asked for, then records one commit whose tree is
/// `HEAD`'s plus these files. The files are staged too, so `git status` shows them clean;
/// nothing else in the index changes.
pub fn commit(
    prepared: &PreparedCommit,
    written: &[&Path],
    message: &str,
) -> Result<Committed, VcsError> {
    let files: Vec<&str> = prepared
        .files
        .iter()
        .filter(|(path, _)| written.contains(&path.as_path()))
        .map(|(_, relative)| relative.as_str())
        .collect();
    if files.is_empty() {
        return Err(VcsError::Refused(
            "nothing was written, so nothing was committed".to_owned(),
        ));
    }
    let repo = Repository::open(&prepared.root).doing("opening the repository")?;
    let parent = match repo.head() {
        Ok(head) => Some(head.peel_to_commit().doing("reading HEAD")?),
        Err(error) if error.code() == git2::ErrorCode::UnbornBranch => None,
        Err(source) => {
            return Err(VcsError::Git {
                action: "reading HEAD".to_owned(),
                source,
            })
        }
    };
    if let Some(branch) = &prepared.branch {
        let reference = format!("refs/heads/{branch}");
        if let Some(parent) = &parent {
            repo.branch(branch, parent, prepared.replace.is_some())
                .doing(format!("creating branch {branch}"))?;
        }
        repo.set_head(&reference)
            .doing(format!("checking out branch {branch}"))?;
    }

    // Stage through the real index: it applies the repository's filters (line endings,
    // .gitattributes), so the blobs are what `git add` would make.
    let mut staged = repo.index().doing("reading the index")?;
    let mut tree_index = git2::Index::new().doing("making an index")?;
    if let Some(parent) = &parent {
        tree_index
            .read_tree(&parent.tree().doing("reading HEAD's tree")?)
            .doing("reading HEAD's tree")?;
    }
    for relative in &files {
        staged
            .add_path(Path::new(relative))
            .doing(format!("staging {relative}"))?;
        let entry = staged.get_path(Path::new(relative), 0).ok_or_else(|| {
            VcsError::Refused(format!("cannot commit: {relative} did not reach the index"))
        })?;
        tree_index
            .add(&entry)
            .doing(format!("adding {relative} to the commit"))?;
    }
    let tree_id = tree_index
        .write_tree_to(&repo)
        .doing("writing the commit's tree")?;
    let tree = repo.find_tree(tree_id).doing("reading the commit's tree")?;
    let signature = signature(&repo)?;
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    let parent_tree = match &parent {
        Some(parent) => Some(parent.tree().doing("reading HEAD's tree")?),
        None => None,
    };
    let change = super::branch::change_of(&repo, &tree, parent_tree.as_ref())
        .doing("reading what the commit changes")?;
    let message = super::branch::with_change_trailer(message, change);
    let id = repo
        .commit(
            Some("HEAD"),
            &signature,
            &signature,
            &message,
            &tree,
            &parents,
        )
        .doing("committing")?;
    staged.write().doing("writing the index")?;
    let branch = repo
        .head()
        .ok()
        .filter(|head| head.is_branch())
        .and_then(|head| head.shorthand().map(str::to_owned))
        .unwrap_or_else(|| "HEAD".to_owned());
    Ok(Committed {
        repository: prepared.root.clone(),
        branch,
        commit: id.to_string(),
        files: files.len(),
        pushed_to: None,
        branch_state: None,
        pull_request: None,
    })
}

/// Pushes the committed branch to the remote [`prepare_commit`] checked, when it was asked
/// to, and records it as the branch's upstream.
///
/// Credentials, in the order libgit2 offers the methods: a user name and password in the
/// remote's URL, git's credential helpers, the SSH agent, then the platform default. A
/// rejected push (the branch exists on the remote with other commits) is an error.
pub fn push(prepared: &PreparedCommit, committed: &mut Committed) -> Result<(), VcsError> {
    let Some(target) = &prepared.push else {
        return Ok(());
    };
    let remote = target.remote.as_str();
    if committed.branch == "HEAD" {
        return Err(VcsError::Refused(
            "cannot push a detached HEAD; use --branch".to_owned(),
        ));
    }
    let repo = Repository::open(&committed.repository).doing("opening the repository")?;
    let mut found = target.open(&repo)?;
    let config = repo.config().doing("reading git's configuration")?;
    let branch = committed.branch.clone();
    let rejection = std::cell::RefCell::new(None);
    let moved = std::cell::RefCell::new(None);
    let lease = prepared.replace;
    let pushed = {
        let mut callbacks = remote_callbacks(&config);
        callbacks.push_update_reference(|reference, status| {
            if let Some(status) = status {
                *rejection.borrow_mut() = Some(format!("{reference}: {status}"));
            }
            Ok(())
        });
        if let Some(lease) = lease {
            // The lease: the remote told us where its branch stands now, just before the
            // update is sent; anything but what ctfix judged stops the push.
            let expected = lease.seen.unwrap_or_else(git2::Oid::zero);
            let destination = format!("refs/heads/{branch}");
            let moved = &moved;
            callbacks.push_negotiation(move |updates| {
                for update in updates {
                    if update.dst_refname() == Some(destination.as_str())
                        && update.src() != expected
                    {
                        *moved.borrow_mut() = Some(update.src());
                        return Err(git2::Error::from_str("the remote branch moved"));
                    }
                }
                Ok(())
            });
        }
        let mut options = git2::PushOptions::new();
        options.remote_callbacks(callbacks);
        let force = if lease.is_some() { "+" } else { "" };
        let refspec = format!("{force}refs/heads/{branch}:refs/heads/{branch}");
        found.push(&[refspec.as_str()], Some(&mut options))
    };
    if let Some(now) = moved.into_inner() {
        let was = lease
            .and_then(|l| l.seen)
            .map_or("absent".to_owned(), short);
        let now = if now.is_zero() {
            "absent".to_owned()
        } else {
            short(now)
        };
        return Err(VcsError::Refused(format!(
            "{remote}'s {branch} moved while ctfix worked (it was {was}, it is now {now}): nothing was pushed and nothing was lost; the new commit stays on the local branch; rerun to judge the branch again"
        )));
    }
    pushed.doing(format!("pushing {branch} to {remote}"))?;
    if let Some(reason) = rejection.into_inner() {
        return Err(VcsError::Refused(format!(
            "{remote} rejected the push of {branch} ({reason}); does the branch already exist there?"
        )));
    }
    let mut config = repo.config().doing("reading git's configuration")?;
    config
        .set_str(&format!("branch.{branch}.remote"), remote)
        .doing("recording the upstream")?;
    config
        .set_str(
            &format!("branch.{branch}.merge"),
            &format!("refs/heads/{branch}"),
        )
        .doing("recording the upstream")?;
    committed.pushed_to = Some(remote.to_owned());
    Ok(())
}

/// For a rerun after a failed push (nothing is left to write): when `HEAD` is on `branch`
/// and its commit is ctfix's own (its subject is `title`), pushes that commit to `remote`.
/// `None` when that is not the situation: nothing to push.
pub fn resume_push(
    start: &Path,
    branch: &str,
    remote: &str,
    title: &str,
) -> Result<Option<Committed>, VcsError> {
    let dir = if start.is_dir() {
        start
    } else {
        start.parent().unwrap_or(Path::new("."))
    };
    let Ok(repo) = Repository::discover(dir) else {
        return Ok(None);
    };
    let Some(workdir) = repo.workdir() else {
        return Ok(None);
    };
    let root = std::fs::canonicalize(workdir).unwrap_or_else(|_| workdir.to_path_buf());
    let Ok(head) = repo.head() else {
        return Ok(None);
    };
    if !head.is_branch() || head.shorthand() != Some(branch) {
        return Ok(None);
    }
    let commit = head.peel_to_commit().doing("reading HEAD")?;
    if commit.summary() != Some(title) {
        return Ok(None);
    }
    let files = match commit.parent(0) {
        Ok(parent) => repo
            .diff_tree_to_tree(
                Some(&parent.tree().doing("reading a tree")?),
                Some(&commit.tree().doing("reading a tree")?),
                None,
            )
            .doing("comparing the commit with its parent")?
            .deltas()
            .len(),
        Err(_) => 0,
    };
    let prepared = PreparedCommit {
        push: Some(push_target(&repo, &root, Some(branch), remote)?),
        root: root.clone(),
        branch: Some(branch.to_owned()),
        files: Vec::new(),
        replace: None,
    };
    let mut committed = Committed {
        repository: root,
        branch: branch.to_owned(),
        commit: commit.id().to_string(),
        files,
        pushed_to: None,
        branch_state: None,
        pull_request: None,
    };
    push(&prepared, &mut committed)?;
    Ok(Some(committed))
}

/// A commit's short hash, for messages.
pub(crate) fn short(oid: git2::Oid) -> String {
    oid.to_string()[..12].to_owned()
}

/// Callbacks that answer libgit2's requests for credentials (three attempts at most).
pub(crate) fn remote_callbacks(config: &git2::Config) -> git2::RemoteCallbacks<'_> {
    let mut attempts = 0;
    let mut callbacks = git2::RemoteCallbacks::new();
    callbacks.credentials(move |url, username, allowed| {
        attempts += 1;
        if attempts > 3 {
            return Err(git2::Error::from_str(
                "authentication failed (tried the URL, credential helpers and the SSH agent)",
            ));
        }
        credentials(config, url, username, allowed, attempts)
    });
    callbacks
}

/// One credential for libgit2's `attempt`-th request.
pub(crate) fn credentials(
    config: &git2::Config,
    url: &str,
    username: Option<&str>,
    allowed: git2::CredentialType,
    attempt: u32,
) -> Result<git2::Cred, git2::Error> {
    use git2::CredentialType as Kind;
    if allowed.contains(Kind::USER_PASS_PLAINTEXT) {
        if attempt == 1 {
            if let Some((user, password)) = url_credentials(url) {
                return git2::Cred::userpass_plaintext(&user, &password);
            }
        }
        return git2::Cred::credential_helper(config, url, username);
    }
    if allowed.contains(Kind::SSH_KEY) {
        return git2::Cred::ssh_key_from_agent(username.unwrap_or("git"));
    }
    if allowed.contains(Kind::USERNAME) {
        return git2::Cred::username(username.unwrap_or("git"));
    }
    git2::Cred::default()
}

/// `user:password` from `https://user:password@host/…` (how CI systems pass tokens).
fn url_credentials(url: &str) -> Option<(String, String)> {
    let (user, password) = url_userinfo(url)?.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// The userinfo of a URL with a scheme (`user:token` in `https://user:token@host/…`), if any;
/// scp-like `user@host:path` addresses have none (their user is a name, never a secret).
pub(crate) fn url_userinfo(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    Some(userinfo).filter(|userinfo| !userinfo.is_empty())
}

/// `url` with its userinfo (credentials) replaced by `***`: how a URL is shown.
pub(crate) fn redacted(url: &str) -> String {
    match url_userinfo(url) {
        Some(userinfo) => url.replacen(&format!("{userinfo}@"), "***@", 1),
        None => url.to_owned(),
    }
}

/// Where a local checkout's HEAD is: a branch, or a detached commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head {
    /// On this branch.
    Branch(String),
    /// At this commit, on no branch.
    Detached(git2::Oid),
}

impl std::fmt::Display for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Head::Branch(name) => f.write_str(name),
            Head::Detached(oid) => write!(f, "the detached commit {oid}"),
        }
    }
}

/// Where HEAD is in the repository around `root`, if it has a commit.
pub fn head_of(root: &Path) -> Option<Head> {
    let repo = git2::Repository::discover(root).ok()?;
    let head = repo.head().ok()?;
    if head.is_branch() {
        head.shorthand().map(|name| Head::Branch(name.to_owned()))
    } else {
        head.target().map(Head::Detached)
    }
}

/// Puts HEAD back at `head` in the repository around `root`, keeping uncommitted work (a
/// safe checkout: it refuses rather than overwrite it).
pub fn switch_to(root: &Path, head: &Head) -> Result<(), String> {
    let repo = git2::Repository::discover(root).map_err(|e| e.message().to_owned())?;
    let target = match head {
        Head::Branch(name) => repo.revparse_single(&format!("refs/heads/{name}")),
        Head::Detached(oid) => repo.find_object(*oid, None),
    }
    .map_err(|e| e.message().to_owned())?;
    repo.checkout_tree(&target, Some(git2::build::CheckoutBuilder::new().safe()))
        .map_err(|e| e.message().to_owned())?;
    match head {
        Head::Branch(name) => repo.set_head(&format!("refs/heads/{name}")),
        Head::Detached(oid) => repo.set_head_detached(*oid),
    }
    .map_err(|e| e.message().to_owned())
}

#[cfg(test)]
mod tests {
    use super::url_credentials;

    #[test]
    fn relative_path_urls() {
        use super::is_relative_path_url as relative;
        assert!(relative("../infra.git"));
        assert!(relative("infra.git"));
        assert!(relative("./a/b"));
        assert!(!relative("/srv/infra.git"));
        assert!(!relative("https://github.com/o/r.git"));
        assert!(!relative("file:///srv/r.git"));
        assert!(!relative("git@github.com:o/r.git"));
        assert!(!relative("host:r.git"));
    }

    #[test]
    fn reads_a_token_from_the_url() {
        assert_eq!(
            url_credentials("https://x-access-token:abc@github.com/o/r.git"),
            Some(("x-access-token".to_owned(), "abc".to_owned()))
        );
        assert_eq!(url_credentials("https://github.com/o/r.git"), None);
        assert_eq!(url_credentials("git@github.com:o/r.git"), None);
    }
}
