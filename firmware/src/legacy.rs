//! The folder rules of bundles made by the original esptool-based image, which the flasher
//! still reads and imagegen still writes (so that older tooling finds its way around a new
//! bundle): one `<target>/artifacts/` folder per build target, holding the build's files under
//! fixed names, and the app found as the one `.bin` that is not something else.

/// Files in an artifacts folder whose name contains one of these words are not the app.
pub const NOT_APP_WORDS: [&str; 3] = ["bootloader", "ota_data", "partition"];

/// The bootloader's file names, preferred first (unsigned builds keep only the second).
pub const BOOTLOADER_FILES: [&str; 2] = ["bootloader.bin", "bootloader.bin-unsigned"];

/// The binary partition table's file name.
pub const TABLE_BIN: &str = "partition-table.bin";

/// The CSV partition table's file name (compiled when no binary table is there).
pub const TABLE_CSV: &str = "partitions.csv";

/// The initial OTA data's file name.
pub const OTA_DATA: &str = "ota_data_initial.bin";

/// The build configuration's file name.
pub const SDKCONFIG: &str = "sdkconfig";

/// Whether `name` could be the app by the words it contains.
pub fn may_name_app(name: &str) -> bool {
    !NOT_APP_WORDS.iter().any(|word| name.contains(word))
}

/// Whether the discovery rule finds a file called `name` as the app (with no other `.bin`).
pub fn is_app_file(name: &str) -> bool {
    name.ends_with(".bin") && may_name_app(name)
}

/// Picks the app among the file names of an artifacts folder: the single `.bin` that is not
/// the bootloader, OTA data or partition table; unsigned builds may only have
/// `<app>.bin-unsigned`. `Err` holds the candidates when there is not exactly one.
pub fn pick_app<'a>(names: &'a [String]) -> Result<&'a str, Vec<&'a str>> {
    let with_suffix = |suffix: &str| -> Vec<&'a str> {
        names
            .iter()
            .map(String::as_str)
            .filter(|n| may_name_app(n) && n.ends_with(suffix))
            .collect()
    };
    let mut apps = with_suffix(".bin");
    if apps.is_empty() {
        apps = with_suffix(".bin-unsigned");
    }
    match apps.as_slice() {
        [one] => Ok(one),
        _ => Err(apps),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_one_bin_that_is_not_something_else_is_the_app() {
        let n = names(&[
            "bootloader.bin",
            "partition-table.bin",
            "ota_data_initial.bin",
            "hello.bin",
        ]);
        assert_eq!(pick_app(&n), Ok("hello.bin"));
    }

    #[test]
    fn unsigned_apps_are_found_when_no_signed_one_is_there() {
        let n = names(&["bootloader.bin-unsigned", "hello.bin-unsigned"]);
        assert_eq!(pick_app(&n), Ok("hello.bin-unsigned"));
    }

    #[test]
    fn two_candidates_are_no_answer() {
        let n = names(&["a.bin", "b.bin"]);
        assert_eq!(pick_app(&n), Err(vec!["a.bin", "b.bin"]));
        assert_eq!(pick_app(&[]), Err(vec![]));
    }
}
