//! Any bytes as the only `.tf` file of a module: parse → analyze → fix, with the invariants of
//! `tests/support/invariants.rs` (no panic, edits keep every other byte, the fixed text parses,
//! a second run plans nothing, compliant and suppressed trails untouched).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/support/invariants.rs"]
#[allow(dead_code)]
mod invariants;

fuzz_target!(|data: &[u8]| {
    invariants::check_invariants(data);
});
