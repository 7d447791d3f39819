//! A fleet run's clones: made once with libgit2, fetched on later runs, and brought back to
//! the remote's default branch only when nothing a person did there would be lost.

use std::path::Path;

use git2::build::{CheckoutBuilder, RepoBuilder};
use git2::{BranchType, FetchOptions, FetchPrune, RemoteCallbacks, Repository, StatusOptions};

/// Makes `dir` a clone of `url` checked out at the remote's default branch: clones it if
/// missing, else fetches and moves to the fetched default branch. Refuses (leaving the
/// clone as it is) when the clone holds uncommitted changes or commits that only it has.
pub(super) fn sync(url: &str, dir: &Path) -> Result<(), String> {
    if dir.join(".git").exists() {
        refresh(url, dir)
    } else {
        clone(url, dir)
    }
}

fn fetch_options() -> FetchOptions<'static> {
    let config = git2::Config::open_default().ok();
    let mut attempts = 0;
    let mut callbacks = RemoteCallbacks::new();
    callbacks.credentials(move |url, username, allowed| {
        attempts += 1;
        match &config {
            Some(config) if attempts <= 3 => {
                crate::vcs::credentials(config, url, username, allowed, attempts)
            }
            _ => Err(git2::Error::from_str(
                "authentication failed (tried the URL, credential helpers and the SSH agent)",
            )),
        }
    });
    let mut options = FetchOptions::new();
    options.remote_callbacks(callbacks);
    options.prune(FetchPrune::On);
    options
}

/// Clones into a temporary directory beside `dir`, then renames it: an interrupted or failed
/// clone never leaves a half clone for the next run to reuse.
fn clone(url: &str, dir: &Path) -> Result<(), String> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .map_err(|error| format!("cannot create {}: {error}", parent.display()))?;
    let temporary = tempfile::Builder::new()
        .prefix(".ctfix-clone-")
        .tempdir_in(parent)
        .map_err(|error| format!("cannot create a directory in {}: {error}", parent.display()))?;
    let staging = temporary.path().join("repository");
    RepoBuilder::new()
        .fetch_options(fetch_options())
        .clone(url, &staging)
        .map_err(|error| format!("cannot clone {}: {}", super::redacted(url), error.message()))?;
    std::fs::rename(&staging, dir)
        .map_err(|error| format!("cannot move the clone to {}: {error}", dir.display()))
}

fn refresh(url: &str, dir: &Path) -> Result<(), String> {
    let git = |action: &str, error: git2::Error| {
        format!("{}: {action}: {}", dir.display(), error.message())
    };
    let repo = Repository::open(dir).map_err(|e| git("opening the clone", e))?;
    let origin = repo
        .find_remote("origin")
        .map_err(|e| git("finding remote origin", e))?;
    let shown = super::redacted(url);
    match origin.url() {
        Some(known) if known == url => {}
        // The same repository with other credentials (a new token): use these.
        Some(known) if super::redacted(known) == shown => repo
            .remote_set_url("origin", url)
            .map_err(|e| git("updating the remote's URL", e))?,
        known => {
            return Err(format!(
                "{} is a clone of {}, not {shown}; move it away or pass another --workdir",
                dir.display(),
                known.map_or_else(|| "an unknown URL".to_owned(), super::redacted)
            ))
        }
    }
    let mut origin = repo
        .find_remote("origin")
        .map_err(|e| git("finding remote origin", e))?;
    origin
        .fetch(&[] as &[&str], Some(&mut fetch_options()), None)
        .map_err(|error| format!("cannot fetch {shown}: {}", error.message()))?;
    // The remote's default branch as it is now (the clone's origin/HEAD was set when it was
    // made: the repository may have been empty then, or renamed its default branch since).
    match origin.default_branch() {
        Ok(name) => {
            let name = name.as_str().unwrap_or_default().to_owned();
            if let Some(branch) = name.strip_prefix("refs/heads/") {
                repo.reference_symbolic(
                    "refs/remotes/origin/HEAD",
                    &format!("refs/remotes/origin/{branch}"),
                    true,
                    "ctfix: the remote's default branch",
                )
                .map_err(|e| git("recording the remote's default branch", e))?;
            }
        }
        // Still empty: nothing to check out, nothing to judge.
        Err(_)
            if repo
                .references_glob("refs/remotes/origin/*")
                .is_ok_and(|mut r| r.next().is_none()) =>
        {
            return Ok(());
        }
        Err(_) => {}
    }

    let leave = |why: String| {
        format!(
            "the clone at {} {why}; ctfix left it as it is and did not run there: push or discard that work, or delete the directory to clone afresh",
            dir.display()
        )
    };
    let mut status = StatusOptions::new();
    status.include_untracked(true).include_ignored(false);
    let dirty = repo
        .statuses(Some(&mut status))
        .map_err(|e| git("reading the status", e))?
        .len();
    if dirty > 0 {
        return Err(leave(format!(
            "holds {dirty} uncommitted change{}",
            if dirty == 1 { "" } else { "s" }
        )));
    }

    let default_ref = repo
        .find_reference("refs/remotes/origin/HEAD")
        .map_err(|e| git("finding the remote's default branch (origin/HEAD)", e))?;
    let remote_branch = default_ref
        .symbolic_target()
        .and_then(|target| target.strip_prefix("refs/remotes/origin/"))
        .ok_or_else(|| format!("{}: origin/HEAD names no branch", dir.display()))?
        .to_owned();
    let target = default_ref
        .resolve()
        .and_then(|r| r.peel_to_commit())
        .map_err(|e| git("reading the remote's default branch", e))?;

    // Nothing may be lost: a detached HEAD must be on the remote's history, and the local
    // default branch must not be ahead of (or diverged from) the remote's.
    let head = repo.head().ok();
    if let Some(head) = head.as_ref().filter(|head| !head.is_branch()) {
        if let Some(id) = head.target() {
            let contained =
                id == target.id() || repo.graph_descendant_of(target.id(), id).unwrap_or(false);
            if !contained {
                return Err(leave(
                    "has a detached HEAD on a commit the remote does not have".to_owned(),
                ));
            }
        }
    }
    if let Ok(local) = repo.find_branch(&remote_branch, BranchType::Local) {
        if let Some(id) = local.get().target() {
            let behind =
                id == target.id() || repo.graph_descendant_of(target.id(), id).unwrap_or(false);
            if !behind {
                return Err(leave(format!(
                    "has commits on {remote_branch} that origin does not have"
                )));
            }
        }
    }

    repo.checkout_tree(target.as_object(), Some(CheckoutBuilder::new().safe()))
        .map_err(|e| git("checking out the default branch", e))?;
    repo.set_head_detached(target.id())
        .map_err(|e| git("moving HEAD", e))?;
    let mut branch = repo
        .branch(&remote_branch, &target, true)
        .map_err(|e| git("updating the default branch", e))?;
    branch
        .set_upstream(Some(&format!("origin/{remote_branch}")))
        .map_err(|e| git("setting the upstream", e))?;
    repo.set_head(&format!("refs/heads/{remote_branch}"))
        .map_err(|e| git("checking out the default branch", e))
}
