//! A binary partition table.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = firmware::partition::parse_table(data);
});
