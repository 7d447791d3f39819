//! Stage 7, git and the forge: what happens after the fixes are written.
//!
//! - [`vcs`]: the uncommitted-work guard, the commit, the push (with a lease when it replaces
//!   a branch);
//! - [`branch`]: the bot's rules for a branch that already exists — whose commits are on it,
//!   and whether to rebuild it, leave it, or say it is up to date;
//! - [`github`]: the pull request, through GitHub's REST API.

pub mod branch;
pub mod github;
pub mod vcs;
