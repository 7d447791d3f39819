//! The interrupt flag (`ctfix::write::interrupt`, what Ctrl-C and SIGTERM set): a write in
//! flight backs out before its rename, and later writes are refused. The flag is process-wide
//! state, so this is the only test of its binary (every integration test file is a process of
//! its own).

mod support;

use std::io::Write;
use std::path::PathBuf;

use ctfix::write::{write_atomically, write_atomically_with};
use support::*;

fn is_fixed(path: &std::path::Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| text.contains("kms_key_id"))
}

#[test]
fn interrupt_flag_backs_out_of_the_write_in_progress_and_refuses_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let first = write_trail_module(&tmp.path().join("a"), "a");
    let second = write_trail_module(&tmp.path().join("b"), "b");
    let before = std::fs::read(&first).unwrap();

    // Ctrl-C arrives while the first file is being written: a write is in flight, so the
    // handler must not exit; the write backs out before its rename.
    let error = write_atomically_with(&first, &before, b"fixed", &mut |file, bytes| {
        assert!(!ctfix::write::interrupt(), "a write is in flight");
        file.write_all(bytes)
    })
    .unwrap_err();
    assert!(error.message.contains("interrupted"), "{error}");
    assert_eq!(std::fs::read(&first).unwrap(), before);
    assert_eq!(leftover_temp_files(tmp.path()), Vec::<PathBuf>::new());

    // Later writes are refused; no write is in flight any more, so a handler may exit at once.
    let error = write_atomically(&second, &std::fs::read(&second).unwrap(), b"x").unwrap_err();
    assert!(error.message.contains("interrupted"), "{error}");
    assert!(ctfix::write::interrupt());
    assert!(!is_fixed(&second));
}
