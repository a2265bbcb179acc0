//! An ESP image (bootloader or app): header, segments, checksum, digest, app descriptor, and the
//! header rewrite the plan does.
#![no_main]

use firmware::esp_image::{self, FlashMode, HeaderPatch};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = esp_image::parse(data);
    let _ = esp_image::app_descriptor(data);
    let mut copy = data.to_vec();
    let _ = esp_image::patch_header(
        &mut copy,
        HeaderPatch {
            mode: Some(FlashMode::Dio),
            freq_code: Some(0),
            size: Some(16 << 20),
        },
    );
});
