//! Bytes as the body of an `aws_cloudtrail` block (and, after a NUL byte, as text following
//! the block), so that the fuzzer spends its time on what ctfix edits. Same invariants as
//! `pipeline`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/support/invariants.rs"]
#[allow(dead_code)]
mod invariants;

fuzz_target!(|data: &[u8]| {
    let (body, after) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let mut file = b"resource \"aws_cloudtrail\" \"main\" {".to_vec();
    file.extend_from_slice(body);
    file.push(b'}');
    file.extend_from_slice(after);
    invariants::check_invariants(&file);
});
