//! Reading: find the Terraform modules under the paths, read and parse their files, follow
//! module calls, and read `*.tf.json`.

pub mod calls;
pub mod discover;
pub mod module;
pub mod outline;
pub mod parse;
pub mod tfjson;
