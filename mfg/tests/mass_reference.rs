//! Mass manufacturing rows against the reference: the per-row CSV `mfg_gen.py` writes for a
//! row (written out here by hand from its rules) run through `nvs_partition_gen.py`.

mod common;

use common::{Rng, assert_same_bytes, reference_image_in};
use mfg::RowId;
use mfg::mass::Batch;

const CONFIG: &str = "app,namespace,\n\
firmware_key,data,hex2bin\n\
serial_no,data,string,REPEAT\n\
device_no,data,i32\n\
\n\
cert,file,binary\n\
calib,namespace,\n\
offset,data,i8\n\
gain,data,u16\n\
token,data,base64\n";

const VALUES: &str = "id,firmware_key,serial_no,device_no,cert,offset,gain,token\n\
1,1a2b3c4d,AB1234,101,cert1.bin,-5,1000,QUJD\n\
2,5e6f7a8b,,102,cert2.bin,7,65535,\"REVG\"\n\
   \n\
3,99aabbcc,AB1234,-2147483648,cert1.bin,-128,0,\n";

/// What `mfg_gen.py` writes for each row: csv.writer output (`\r\n`), namespace rows with two
/// empty fields, REPEAT values taken from the first row.
fn expected_row_csv(
    firmware_key: &str,
    device_no: &str,
    cert: &str,
    offset: &str,
    gain: &str,
    token: &str,
) -> String {
    [
        "key,type,encoding,value".to_string(),
        "app,namespace,,".to_string(),
        format!("firmware_key,data,hex2bin,{firmware_key}"),
        "serial_no,data,string,AB1234".to_string(),
        format!("device_no,data,i32,{device_no}"),
        format!("cert,file,binary,{cert}"),
        "calib,namespace,,".to_string(),
        format!("offset,data,i8,{offset}"),
        format!("gain,data,u16,{gain}"),
        format!("token,data,base64,{token}"),
    ]
    .iter()
    .map(|l| format!("{l}\r\n"))
    .collect()
}

fn batch_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(5);
    std::fs::write(dir.path().join("cert1.bin"), rng.bytes(1500)).unwrap();
    std::fs::write(dir.path().join("cert2.bin"), rng.bytes(5000)).unwrap();
    std::fs::write(dir.path().join("config.csv"), CONFIG).unwrap();
    std::fs::write(dir.path().join("values.csv"), VALUES).unwrap();
    dir
}

#[test]
fn every_row_matches_the_reference() {
    let dir = batch_dir();
    let batch = Batch::open(
        &dir.path().join("config.csv"),
        &dir.path().join("values.csv"),
        0x6000,
    )
    .unwrap();
    assert_eq!(
        batch.row_ids(),
        vec![RowId::new("1"), RowId::new("2"), RowId::new("3")]
    );
    assert!(batch.check().is_empty());
    let expected = [
        (
            "1",
            expected_row_csv("1a2b3c4d", "101", "cert1.bin", "-5", "1000", "QUJD"),
        ),
        (
            "2",
            expected_row_csv("5e6f7a8b", "102", "cert2.bin", "7", "65535", "REVG"),
        ),
        (
            "3",
            expected_row_csv("99aabbcc", "-2147483648", "cert1.bin", "-128", "0", ""),
        ),
    ];
    for (id, csv) in expected {
        let id = RowId::new(id);
        assert_eq!(batch.row_csv(&id).unwrap(), csv, "row {id}");
        let reference = reference_image_in(dir.path(), &csv, 0x6000);
        assert_same_bytes(&batch.image(&id).unwrap(), &reference, &csv);
    }
}

#[test]
fn first_key_as_row_id_and_several_partition_sizes() {
    let config = "dev,namespace,\nserial,data,string\ncount,data,u32\n";
    let values = "serial,count\nSN-0001,1\nSN-0002,4294967295\n";
    for size in [0x3000, 0x10000] {
        let batch = Batch::new(config, values, size, std::path::Path::new(".")).unwrap();
        for (id, count) in [("SN-0001", "1"), ("SN-0002", "4294967295")] {
            let csv = format!(
                "key,type,encoding,value\r\ndev,namespace,,\r\nserial,data,string,{id}\r\ncount,data,u32,{count}\r\n"
            );
            let id = RowId::new(id);
            assert_eq!(batch.row_csv(&id).unwrap(), csv);
            let dir = tempfile::tempdir().unwrap();
            assert_same_bytes(
                &batch.image(&id).unwrap(),
                &reference_image_in(dir.path(), &csv, size),
                &csv,
            );
        }
    }
}

#[test]
fn values_with_commas_and_quotes_survive_the_per_row_csv() {
    let config = "dev,namespace,\nlabel,data,string\n";
    let values = "id,label\nA,\"x, \"\"quoted\"\"\"\n";
    let batch = Batch::new(config, values, 0x3000, std::path::Path::new(".")).unwrap();
    let id = RowId::new("A");
    let csv = batch.row_csv(&id).unwrap();
    assert_eq!(
        csv,
        "key,type,encoding,value\r\ndev,namespace,,\r\nlabel,data,string,\"x, \"\"quoted\"\"\"\r\n"
    );
    let dir = tempfile::tempdir().unwrap();
    assert_same_bytes(
        &batch.image(&id).unwrap(),
        &reference_image_in(dir.path(), &csv, 0x3000),
        &csv,
    );
}
