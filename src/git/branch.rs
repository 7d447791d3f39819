//! The bot's rules for a `--branch` that already exists (Renovate's and Scala Steward's
//! conventions: the branch name is the change's identity, the bot keeps its own branch
//! current, and never overwrites a person's commits).
//!
//! ctfix marks its commits with the trailer [`TRAILER`], not by author: bots share
//! identities. A branch whose every commit since it left its base carries the trailer is
//! ctfix's own, and a re-run rebuilds it on the base; one commit without it means a person
//! edited the branch, and ctfix leaves it alone.

use std::path::{Path, PathBuf};

use git2::{BranchType, Direction, Oid, Repository};

use super::vcs::{push_target, remote_callbacks, Doing, VcsError};

/// The trailer on every commit ctfix makes.
pub const TRAILER: &str = "Generated-by: ctfix";

/// Whether a commit message carries ctfix's trailer.
pub fn is_ctfix_message(message: &str) -> bool {
    message.lines().any(|line| line.trim() == TRAILER)
}

/// Adds ctfix's trailer to a commit message.
pub fn with_trailer(message: &str) -> String {
    format!("{}\n\n{TRAILER}\n", message.trim_end())
}

/// What ctfix found of `--branch` before writing anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    /// The repository's working directory.
    pub root: PathBuf,
    /// The base branch: the one checked out.
    pub base: String,
    /// The branch's commit on the remote when ctfix read it (`None`: no such branch there).
    /// Only read when pushing.
    pub remote_seen: Option<Oid>,
    /// What the branch is.
    pub verdict: Verdict,
}

/// Whose the existing branch is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No such branch, locally or on the remote.
    New,
    /// The branch is checked out: the earlier behaviour applies (a rerun after a failed push).
    CheckedOut,
    /// Every commit on it since it left the base is ctfix's; `tip` is the one to compare
    /// with (the remote's when pushing).
    Ours {
        /// The branch's commit.
        tip: Oid,
    },
    /// Someone else committed on it.
    Edited {
        /// The branch's commit.
        tip: Oid,
        /// The first commit that is not ctfix's (short hash and subject).
        commit: String,
    },
}

/// Reads the branch `branch` around `start` (a path the user gave): locally, and on `remote`
/// when pushing (its commits are fetched to judge them). `base` names the base branch, which
/// must be the one checked out: the fixes are computed on the working tree.
///
/// `None` outside a repository, on an invalid name or a detached `HEAD` without `--base`:
/// the commit's own checks then say what is wrong.
pub fn inspect(
    start: &Path,
    branch: &str,
    remote: Option<&str>,
    base: Option<&str>,
) -> Result<Option<Inspected>, VcsError> {
    let dir = if start.is_dir() {
        start
    } else {
        start.parent().unwrap_or(Path::new("."))
    };
    let Ok(repo) = Repository::discover(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }) else {
        return Ok(None);
    };
    let Some(workdir) = repo.workdir() else {
        return Ok(None);
    };
    let root = std::fs::canonicalize(workdir).unwrap_or_else(|_| workdir.to_path_buf());
    if !git2::Branch::name_is_valid(branch).unwrap_or(false) {
        return Ok(None);
    }
    let Ok(head) = repo.head() else {
        return Ok(None);
    };
    let checked_out = head
        .is_branch()
        .then(|| head.shorthand().map(str::to_owned))
        .flatten();
    let checked_out = match (checked_out, base) {
        (Some(name), _) => name,
        (None, None) => return Ok(None),
        (None, Some(base)) => {
            return Err(VcsError::Refused(format!(
                "--base {base}: HEAD is detached; check out {base} first (git switch {base})"
            )))
        }
    };
    if let Some(base) = base {
        if base != checked_out {
            return Err(VcsError::Refused(format!(
                "--base {base}: ctfix computes the fixes on the working tree, which is on {checked_out}; check out {base} first (git switch {base})"
            )));
        }
    }
    if checked_out == branch {
        return Ok(Some(Inspected {
            root,
            base: checked_out,
            remote_seen: None,
            verdict: Verdict::CheckedOut,
        }));
    }
    let base_commit = head.peel_to_commit().doing("reading HEAD")?.id();
    let local = repo
        .find_branch(branch, BranchType::Local)
        .ok()
        .and_then(|b| b.get().target());
    let remote_seen = match remote {
        Some(remote) => read_remote(&repo, &root, branch, remote)?,
        None => None,
    };
    let mut verdict = Verdict::New;
    // The remote's tip first: it is what the pull request shows, and what a push replaces.
    for tip in [remote_seen, local].into_iter().flatten() {
        if let Some(commit) = foreign_commit(&repo, tip, base_commit)? {
            verdict = Verdict::Edited { tip, commit };
            break;
        }
        if verdict == Verdict::New {
            verdict = Verdict::Ours { tip };
        }
    }
    Ok(Some(Inspected {
        root,
        base: checked_out,
        remote_seen,
        verdict,
    }))
}

/// The push URL of `remote` (for reading `owner/name` from it).
pub fn remote_url(root: &Path, remote: &str) -> Option<String> {
    let repo = Repository::open(root).ok()?;
    let found = repo.find_remote(remote).ok()?;
    found.pushurl().or(found.url()).map(str::to_owned)
}

/// The remote's commit for `branch` (ls-remote), fetched so its history can be judged.
fn read_remote(
    repo: &Repository,
    root: &Path,
    branch: &str,
    remote: &str,
) -> Result<Option<Oid>, VcsError> {
    let target = push_target(repo, root, Some(branch), remote)?;
    let mut found = target.open(repo)?;
    let config = repo.config().doing("reading git's configuration")?;
    let reference = format!("refs/heads/{branch}");
    let seen = {
        let connection = found
            .connect_auth(Direction::Fetch, Some(remote_callbacks(&config)), None)
            .doing(format!("reading the branches of {remote}"))?;
        let heads = connection
            .list()
            .doing(format!("reading the branches of {remote}"))?;
        heads
            .iter()
            .find(|head| head.name() == reference)
            .map(|head| head.oid())
    };
    if let Some(oid) = seen {
        let mut options = git2::FetchOptions::new();
        options.remote_callbacks(remote_callbacks(&config));
        let refspec = format!("+{reference}:refs/remotes/{remote}/{branch}");
        found
            .fetch(&[refspec.as_str()], Some(&mut options), None)
            .doing(format!("fetching {branch} from {remote}"))?;
        repo.find_commit(oid)
            .doing(format!("reading {remote}'s {branch}"))?;
    }
    Ok(seen)
}

/// The first commit on `tip` since it left `base` that ctfix did not make, if any.
fn foreign_commit(repo: &Repository, tip: Oid, base: Oid) -> Result<Option<String>, VcsError> {
    let mut walk = repo.revwalk().doing("walking the branch")?;
    walk.push(tip).doing("walking the branch")?;
    walk.hide(base).doing("walking the branch")?;
    for oid in walk {
        let oid = oid.doing("walking the branch")?;
        let commit = repo.find_commit(oid).doing("reading a commit")?;
        if !is_ctfix_message(&String::from_utf8_lossy(commit.message_bytes())) {
            return Ok(Some(format!(
                "{} {}",
                super::vcs::short(oid),
                commit.summary().unwrap_or("")
            )));
        }
    }
    Ok(None)
}

/// Whether two commits hold the same tree.
pub fn same_tree(root: &Path, a: &str, b: Oid) -> Result<bool, VcsError> {
    let repo = Repository::open(root).doing("opening the repository")?;
    let a = Oid::from_str(a).doing("reading the new commit")?;
    let tree_a = repo.find_commit(a).doing("reading a commit")?.tree_id();
    let tree_b = repo.find_commit(b).doing("reading a commit")?.tree_id();
    Ok(tree_a == tree_b)
}

/// Points the local `branch` at `tip` (the branch was up to date: the commit just made
/// is dropped). The working tree and index already hold `tip`'s content for ctfix's files.
pub fn point_at(root: &Path, branch: &str, tip: Oid) -> Result<(), VcsError> {
    let repo = Repository::open(root).doing("opening the repository")?;
    repo.reference(
        &format!("refs/heads/{branch}"),
        tip,
        true,
        "ctfix: the rebuilt branch is up to date",
    )
    .doing(format!("resetting {branch}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_trailer() {
        let message = with_trailer("Encrypt logs\n\nctfix fixed 1 trail\n");
        assert!(message.ends_with("\n\nGenerated-by: ctfix\n"));
        assert!(is_ctfix_message(&message));
        assert!(!is_ctfix_message("Encrypt logs\n\nby hand"));
    }
}
