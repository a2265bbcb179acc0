//! The `--override_pt` tables equal the worked tables of the original `ptmaker` rules
//! (seed-flash-image.md section 5) for 4, 8 and 16 MB, with and without a model, and are
//! valid for `esp-idf-part` in binary and CSV form.

use esp_idf_part::PartitionTable;
use firmware::override_table::{OverrideMode, generate};

const MB: u64 = 1 << 20;
/// The original image's table offset, which the worked tables assume.
const TABLE_OFFSET: u32 = 0x10000;
/// A 200 KiB model (0x32000 bytes once rounded to 4 KiB).
const MODEL_LEN: u64 = 200 * 1024;

/// (flash MB, mode, app and model rows as (name, offset, size)).
type Case = (u64, OverrideMode, &'static [(&'static str, u32, u32)]);

const CASES: &[Case] = &[
    (
        4,
        OverrideMode::Normal,
        &[
            ("factory", 0x20000, 0x140000),
            ("ota_0", 0x160000, 0x140000),
            ("ota_1", 0x2A0000, 0x140000),
        ],
    ),
    (
        8,
        OverrideMode::Normal,
        &[
            ("factory", 0x20000, 0x2A0000),
            ("ota_0", 0x2C0000, 0x2A0000),
            ("ota_1", 0x560000, 0x2A0000),
        ],
    ),
    (
        16,
        OverrideMode::Normal,
        &[
            ("factory", 0x20000, 0x540000),
            ("ota_0", 0x560000, 0x540000),
            ("ota_1", 0xAA0000, 0x540000),
        ],
    ),
    (
        4,
        OverrideMode::NoFactory,
        &[("ota_0", 0x20000, 0x1F0000), ("ota_1", 0x210000, 0x1F0000)],
    ),
    (
        8,
        OverrideMode::NoFactory,
        &[("ota_0", 0x20000, 0x3F0000), ("ota_1", 0x410000, 0x3F0000)],
    ),
    (
        16,
        OverrideMode::NoFactory,
        &[("ota_0", 0x20000, 0x7F0000), ("ota_1", 0x810000, 0x7F0000)],
    ),
    // With the 200 KiB model: the worked 8 MB rows, and the same rules at 4 and 16 MB.
    (
        4,
        OverrideMode::NormalWithModel,
        &[
            ("factory", 0x20000, 0x130000),
            ("ota_0", 0x150000, 0x130000),
            ("ota_1", 0x280000, 0x130000),
            ("tflite_model", 0x3CE000, 0x32000),
        ],
    ),
    (
        8,
        OverrideMode::NormalWithModel,
        &[
            ("factory", 0x20000, 0x280000),
            ("ota_0", 0x2A0000, 0x280000),
            ("ota_1", 0x520000, 0x280000),
            ("tflite_model", 0x7CE000, 0x32000),
        ],
    ),
    (
        16,
        OverrideMode::NormalWithModel,
        &[
            ("factory", 0x20000, 0x530000),
            ("ota_0", 0x550000, 0x530000),
            ("ota_1", 0xA80000, 0x530000),
            ("tflite_model", 0xFCE000, 0x32000),
        ],
    ),
    (
        4,
        OverrideMode::NoFactoryWithModel,
        &[
            ("ota_0", 0x20000, 0x1D0000),
            ("ota_1", 0x1F0000, 0x1D0000),
            ("tflite_model", 0x3CE000, 0x32000),
        ],
    ),
    (
        8,
        OverrideMode::NoFactoryWithModel,
        &[
            ("ota_0", 0x20000, 0x3D0000),
            ("ota_1", 0x3F0000, 0x3D0000),
            ("tflite_model", 0x7CE000, 0x32000),
        ],
    ),
    (
        16,
        OverrideMode::NoFactoryWithModel,
        &[
            ("ota_0", 0x20000, 0x7D0000),
            ("ota_1", 0x7F0000, 0x7D0000),
            ("tflite_model", 0xFCE000, 0x32000),
        ],
    ),
];

/// The CSV the original `ptmaker` writes for these rows.
fn csv(rows: &[(&str, u32, u32)]) -> String {
    let mut s = String::from("# Name,Type,SubType,Offset,Size,Flags\n");
    s += "nvs,data,nvs,0x11000,0x6000,\nphy_init,data,phy,0x17000,0x1000,\notadata,data,ota,0x18000,0x2000,\n";
    for &(name, offset, size) in rows {
        let (ty, sub) = match name {
            "tflite_model" => ("data", "spiffs"),
            app => ("app", app),
        };
        s += &format!("{name},{ty},{sub},{offset:#x},{size:#x},\n");
    }
    s
}

#[test]
fn generated_tables_equal_the_worked_tables() {
    for &(flash_mb, mode, rows) in CASES {
        let what = format!("{flash_mb} MB {mode}");
        let model = mode.with_model().then_some(MODEL_LEN);
        let table = generate(TABLE_OFFSET, flash_mb * MB, mode, model).unwrap();
        table.validate().unwrap_or_else(|e| panic!("{what}: {e}"));
        let expected = PartitionTable::try_from_str(csv(rows)).unwrap();
        assert_eq!(table, expected, "{what}");
        let bin = table.to_bin().unwrap();
        assert_eq!(bin, expected.to_bin().unwrap(), "{what}: binary");
        // The binary reads back, with its MD5, through the flasher's own reader.
        let back = firmware::partition::parse_table(&bin).unwrap();
        assert_eq!(back, table, "{what}: read back");
        let end = firmware::partition::table_end(&back);
        assert!(end <= flash_mb * MB, "{what}: inside the flash");
        if mode.with_model() {
            assert_eq!(end, flash_mb * MB, "{what}: the model ends the flash");
        }
    }
}

#[test]
fn a_model_is_ignored_by_the_modes_without_one() {
    for flash_mb in [4, 8, 16] {
        for mode in [OverrideMode::Normal, OverrideMode::NoFactory] {
            assert_eq!(
                generate(TABLE_OFFSET, flash_mb * MB, mode, Some(MODEL_LEN)).unwrap(),
                generate(TABLE_OFFSET, flash_mb * MB, mode, None).unwrap(),
            );
        }
    }
}
