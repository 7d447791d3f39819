//! The bot's rules for a `--branch` that already exists (Renovate's and Scala Steward's
//! conventions: the branch name is the change's identity, the bot keeps its own branch
//! current, and never overwrites a person's commits).
//!
//! ctfix marks its commits with the trailer [`TRAILER`], not by author: bots share
//! identities. A second trailer, [`CHANGE_TRAILER`], records what ctfix's commit changes (its
//! paths and their new contents): a person who amends the commit keeps the first trailer but
//! changes that; a rebase onto a newer base keeps it. A branch whose
//! every commit since it left its base carries the trailer (and, when recorded, still makes
//! its change) is ctfix's own, and a re-run rebuilds it on the base; any other commit means a person
//! edited the branch, and ctfix leaves it alone.

use std::path::{Path, PathBuf};

use git2::{BranchType, Oid, Repository};

use super::vcs::{push_target, remote_callbacks, Doing, VcsError};

/// The trailer on every commit ctfix makes.
pub const TRAILER: &str = "Generated-by: ctfix";

/// The trailer fingerprinting what ctfix's commit changes ([`change_of`]).
pub const CHANGE_TRAILER: &str = "Ctfix-Change:";

/// Whether a commit message carries ctfix's trailer.
pub fn is_ctfix_message(message: &str) -> bool {
    message.lines().any(|line| line.trim() == TRAILER)
}

/// Whether a commit is as ctfix made it: its message carries the trailer, and it makes the
/// change the message records (`change`, from [`change_of`]; commits of versions that
/// recorded none are judged by the trailer alone).
pub fn is_ctfix_commit(message: &str, change: Oid) -> bool {
    is_ctfix_message(message)
        && message
            .lines()
            .filter_map(|line| line.trim().strip_prefix(CHANGE_TRAILER))
            .all(|recorded| recorded.trim() == change.to_string())
}

/// Adds the change trailer to a message, before ctfix's trailer when that ends it (it stays
/// the last line).
pub fn with_change_trailer(message: &str, change: Oid) -> String {
    let message = message.trim_end();
    match message.strip_suffix(TRAILER) {
        Some(before) if before.ends_with('\n') => {
            format!("{before}{CHANGE_TRAILER} {change}\n{TRAILER}\n")
        }
        _ => format!("{message}\n{CHANGE_TRAILER} {change}\n"),
    }
}

/// A fingerprint of what `tree` changes against `parent`: each changed path with its new
/// content's id. A rebase that keeps the change keeps it; an amend that edits a file does
/// not.
pub fn change_of(
    repo: &Repository,
    tree: &git2::Tree<'_>,
    parent: Option<&git2::Tree<'_>>,
) -> Result<Oid, git2::Error> {
    let diff = repo.diff_tree_to_tree(parent, Some(tree), None)?;
    let mut listed = String::new();
    for delta in diff.deltas() {
        let path = delta
            .new_file()
            .path()
            .or_else(|| delta.old_file().path())
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        listed.push_str(&format!("{path}\0{}\n", delta.new_file().id()));
    }
    Oid::hash_object(git2::ObjectType::Blob, listed.as_bytes())
}

/// [`change_of`] a commit against its first parent.
fn change_of_commit(repo: &Repository, commit: &git2::Commit<'_>) -> Result<Oid, VcsError> {
    let tree = commit.tree().doing("reading a commit's tree")?;
    let parent = match commit.parent(0) {
        Ok(parent) => Some(parent.tree().doing("reading a commit's tree")?),
        Err(_) => None,
    };
    change_of(repo, &tree, parent.as_ref()).doing("reading what a commit changes")
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
    /// Why the remote could not be read, when it could not (the push will say more).
    pub remote_error: Option<String>,
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
    /// No commit on it is ctfix's: a branch of someone else's that happens to have the name.
    NotOurs,
    /// ctfix made it, and someone else committed on it since.
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
/// `None` outside a repository or on an invalid name: the commit's own checks then say what
/// is wrong. A detached `HEAD` needs `--base` naming the branch at its commit.
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
    // A detached HEAD (how most CI systems check out) is on `--base` when that branch, or
    // its remote-tracking branch, is at HEAD's commit; without `--base` the branch's base is
    // unknown, and the bot's rules cannot be applied.
    let checked_out = match (checked_out, base) {
        (Some(name), _) => name,
        (None, None) => {
            return Err(VcsError::Refused(format!(
                "--branch {branch}: HEAD is detached, so ctfix does not know the branch it is on; pass --base with that branch's name (the pull request's base), or check it out (git switch <branch>)"
            )))
        }
        (None, Some(base)) => {
            let head_commit = head.peel_to_commit().doing("reading HEAD")?.id();
            let at_head = |name: &str| {
                repo.find_reference(name)
                    .ok()
                    .and_then(|r| r.peel_to_commit().ok())
                    .is_some_and(|c| c.id() == head_commit)
            };
            let remote_name = remote.unwrap_or("origin");
            if !at_head(&format!("refs/heads/{base}"))
                && !at_head(&format!("refs/remotes/{remote_name}/{base}"))
            {
                return Err(VcsError::Refused(format!(
                    "--base {base}: HEAD is detached at a commit that is not {base}'s; check out {base} first (git switch {base})"
                )));
            }
            base.to_owned()
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
            remote_error: None,
            verdict: Verdict::CheckedOut,
        }));
    }
    // A shallow clone lacks the history the branch is judged by, and libgit2's fetch of the
    // branch into it drops the clone's record of being shallow: refuse before fetching.
    if repo.is_shallow() || repo.commondir().join("shallow").is_file() {
        return Err(VcsError::Refused(format!(
            "the repository is a shallow clone, without the history ctfix reads to judge branch {branch}: fetch it whole first (`git fetch --unshallow`; actions/checkout: `fetch-depth: 0`)"
        )));
    }
    let base_commit = head.peel_to_commit().doing("reading HEAD")?.id();
    let local = repo
        .find_branch(branch, BranchType::Local)
        .ok()
        .and_then(|b| b.get().target());
    // A remote that cannot be read (not there yet, offline) counts as not having the branch:
    // the push then fails, or its lease refuses, and says why.
    let (remote_seen, remote_error) = match remote {
        Some(remote) => match read_remote(&repo, &root, branch, remote) {
            Ok(seen) => (seen, None),
            Err(error) => (None, Some(error.to_string())),
        },
        None => (None, None),
    };
    let mut verdict = Verdict::New;
    // The remote's tip first: it is what the pull request shows, and what a push replaces.
    for tip in [remote_seen, local].into_iter().flatten() {
        let history = judge_history(&repo, tip, base_commit)?;
        if history.ours == 0 {
            verdict = Verdict::NotOurs;
            break;
        }
        if let Some(commit) = history.foreign {
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
        remote_error,
        verdict,
    }))
}

/// The push URL of `remote` (for reading `owner/name` from it).
pub fn remote_url(root: &Path, remote: &str) -> Option<String> {
    let repo = Repository::open(root).ok()?;
    let found = repo.find_remote(remote).ok()?;
    found.pushurl().or(found.url()).map(str::to_owned)
}

/// The remote's commit for `branch`, fetched so its history can be judged. It is fetched
/// into a ref of ctfix's own, emptied first, so a stale remote-tracking branch cannot pass
/// for what the remote holds now (and an empty remote, which libgit2's ref listing cannot
/// take, needs no special case).
fn read_remote(
    repo: &Repository,
    root: &Path,
    branch: &str,
    remote: &str,
) -> Result<Option<Oid>, VcsError> {
    let target = push_target(repo, root, Some(branch), remote)?;
    let mut found = target.open(repo)?;
    let config = repo.config().doing("reading git's configuration")?;
    let seen_ref = format!("refs/ctfix/seen/{branch}");
    if let Ok(mut stale) = repo.find_reference(&seen_ref) {
        stale
            .delete()
            .doing("clearing ctfix's view of the remote")?;
    }
    let mut options = git2::FetchOptions::new();
    options.remote_callbacks(remote_callbacks(&config));
    let refspec = format!("+refs/heads/{branch}:{seen_ref}");
    found
        .fetch(&[refspec.as_str()], Some(&mut options), None)
        .doing(format!("fetching {branch} from {remote}"))?;
    let seen = match repo.find_reference(&seen_ref) {
        Ok(mut reference) => {
            let oid = reference.target();
            reference
                .delete()
                .doing("clearing ctfix's view of the remote")?;
            oid
        }
        Err(_) => None,
    };
    if let Some(oid) = seen {
        // Keep the remote-tracking branch current too, as `git fetch` would.
        repo.reference(
            &format!("refs/remotes/{remote}/{branch}"),
            oid,
            true,
            "ctfix: fetched",
        )
        .doing("updating the remote-tracking branch")?;
    }
    Ok(seen)
}

/// Whose commits a branch holds since it left its base.
struct History {
    /// How many carry ctfix's trailer, amended or not (a branch merged into the base counts
    /// its tip, if ctfix's): the branch is ctfix's.
    ours: usize,
    /// The first one that is not as ctfix made it (short hash and subject): a person's, or
    /// ctfix's amended by a person.
    foreign: Option<String>,
}

fn judge_history(repo: &Repository, tip: Oid, base: Oid) -> Result<History, VcsError> {
    let is_ours = |oid: Oid| -> Result<bool, VcsError> {
        let commit = repo.find_commit(oid).doing("reading a commit")?;
        Ok(is_ctfix_commit(
            &String::from_utf8_lossy(commit.message_bytes()),
            change_of_commit(repo, &commit)?,
        ))
    };
    let mut walk = repo.revwalk().doing("walking the branch")?;
    walk.push(tip).doing("walking the branch")?;
    walk.hide(base).doing("walking the branch")?;
    let mut history = History {
        ours: 0,
        foreign: None,
    };
    for oid in walk {
        let oid = oid.doing("walking the branch")?;
        let commit = repo.find_commit(oid).doing("reading a commit")?;
        let message = String::from_utf8_lossy(commit.message_bytes());
        let marked = is_ctfix_message(&message);
        if marked {
            history.ours += 1;
        }
        if history.foreign.is_none() && !is_ctfix_commit(&message, change_of_commit(repo, &commit)?)
        {
            history.foreign = Some(format!(
                "{} {}{}",
                super::vcs::short(oid),
                commit.summary().unwrap_or(""),
                if marked {
                    " (ctfix's commit, amended)"
                } else {
                    ""
                }
            ));
        }
    }
    if history.ours == 0 && history.foreign.is_none() && is_ours(tip)? {
        // Merged into the base: nothing left on the branch but ctfix's commit.
        history.ours = 1;
    }
    Ok(history)
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

    #[test]
    fn an_amended_change_is_no_longer_ctfix_s() {
        let tree = Oid::from_str("4b825dc642cb6eb9a060e54bf8d69288fbee4904").unwrap();
        let other = Oid::from_str("0000000000000000000000000000000000000001").unwrap();
        let message = with_change_trailer(&with_trailer("Encrypt logs\n"), tree);
        assert_eq!(
            message,
            format!("Encrypt logs\n\nCtfix-Change: {tree}\nGenerated-by: ctfix\n")
        );
        assert!(is_ctfix_commit(&message, tree));
        assert!(!is_ctfix_commit(&message, other));
        // A commit of a version that recorded no tree: the trailer decides.
        assert!(is_ctfix_commit(&with_trailer("Encrypt logs\n"), other));
    }
}
