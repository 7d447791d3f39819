//! Judging: resolve expressions under a module's defaults and its callers' arguments, evaluate
//! key policies, honour suppressions, and decide each trail's status and remedy.

pub mod analyze;
pub mod key_check;
pub mod key_choice;
pub mod policy;
pub mod resolve;
pub mod suppress;
