//! Output: diffs, the text / JSON / SARIF reports, the pull-request body and `--explain`.

pub mod explain;
pub mod pull_request;
pub mod render;
pub mod report;
pub mod sarif;
