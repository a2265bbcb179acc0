//! `manifest.json` as the flasher reads it from a bundle.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = firmware::manifest::Manifest::from_json(data);
});
