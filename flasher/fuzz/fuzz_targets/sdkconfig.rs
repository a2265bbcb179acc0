//! An sdkconfig, and the numbers the plan reads from it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(config) = firmware::sdkconfig::Sdkconfig::parse(&String::from_utf8_lossy(data)) {
        let _ = config.number("CONFIG_PARTITION_TABLE_OFFSET");
        let _ = config.number("CONFIG_BOOTLOADER_OFFSET_IN_FLASH");
    }
});
