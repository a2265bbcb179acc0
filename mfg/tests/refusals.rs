//! Inputs refused before any image is made: each names the row (line or row id), the key and
//! the reason with its fix.

use std::path::Path;

use mfg::RowId;
use mfg::mass::{Batch, ConfigProblem, MassError};
use mfg::nvs::{self, NvsError, Problem, SizeError};

const HEADER: &str = "key,type,encoding,value\nns,namespace,,\n";

fn refuse(rows: &str, size: u32) -> NvsError {
    let csv = format!("{HEADER}{rows}");
    nvs::image_from_csv(&csv, Path::new("."), size).expect_err(&csv)
}

/// The error's one-line message, checked to name `key` and contain `words`.
fn message(err: &dyn std::error::Error, key: &str, words: &str) -> String {
    let text = err.to_string();
    assert!(!text.contains('\n'), "one line: {text}");
    assert!(
        text.contains(&format!("`{key}`")),
        "names the key `{key}`: {text}"
    );
    assert!(text.contains(words), "says `{words}`: {text}");
    text
}

#[test]
fn integers_out_of_range() {
    for (enc, value) in [
        ("u8", "300"),
        ("u8", "-1"),
        ("i8", "-200"),
        ("i8", "128"),
        ("u16", "65536"),
        ("i16", "-32769"),
        ("u32", "4294967296"),
        ("i32", "2147483648"),
        ("u64", "18446744073709551616"),
        ("i64", "-9223372036854775809"),
        ("u64", "99999999999999999999999999999999999999999"),
    ] {
        let err = refuse(&format!("v,data,{enc},{value}\n"), 0x3000);
        assert!(
            matches!(
                err,
                NvsError::Entry {
                    line: 3,
                    problem: Problem::OutOfRange { .. },
                    ..
                }
            ),
            "{err}"
        );
        message(&err, "v", &format!("does not fit {enc}"));
    }
}

#[test]
fn integers_not_decimal() {
    for value in ["0x10", "", "1.5", "ten"] {
        let err = refuse(&format!("v,data,u32,{value}\n"), 0x3000);
        assert!(
            matches!(
                err,
                NvsError::Entry {
                    problem: Problem::NotAnInteger { .. },
                    ..
                }
            ),
            "{err}"
        );
        message(&err, "v", "write it in decimal");
    }
}

#[test]
fn bad_hex_and_base64() {
    let err = refuse("h,data,hex2bin,abc\n", 0x3000);
    assert!(
        matches!(
            err,
            NvsError::Entry {
                problem: Problem::OddHexLength(3),
                ..
            }
        ),
        "{err}"
    );
    let err = refuse("h,data,hex2bin,zz\n", 0x3000);
    message(&err, "h", "not a hex digit");
    for value in ["QQ", "QQ==QQ==", "QU*J", "Q==="] {
        let err = refuse(&format!("b,data,base64,{value}\n"), 0x3000);
        assert!(
            matches!(
                err,
                NvsError::Entry {
                    problem: Problem::BadBase64(_),
                    ..
                }
            ),
            "{value}: {err}"
        );
        message(&err, "b", "base64");
    }
}

#[test]
fn string_too_long_and_blob_too_large() {
    let err = refuse(&format!("s,data,string,{}\n", "x".repeat(3968)), 0x3000);
    assert!(
        matches!(
            err,
            NvsError::Entry {
                problem: Problem::StringTooLong { len: 3968 },
                ..
            }
        ),
        "{err}"
    );
    message(&err, "s", "at most 3967 bytes");
    let hex = "ab".repeat(9000);
    let err = refuse(
        &format!("small,data,u8,1\nbig,data,hex2bin,{hex}\n"),
        0x3000,
    );
    assert!(
        matches!(
            err,
            NvsError::Entry {
                line: 4,
                problem: Problem::DoesNotFit {
                    pages: 2,
                    size: 0x3000
                },
                ..
            }
        ),
        "{err}"
    );
    message(&err, "big", "larger partition size");
}

#[test]
fn partition_sizes() {
    let csv = format!("{HEADER}v,data,u8,1\n");
    for (size, expected) in [
        (0x3001, SizeError::NotPageMultiple(0x3001)),
        (0x2000, SizeError::TooSmall(0x2000)),
        (0, SizeError::TooSmall(0)),
    ] {
        let err = nvs::image_from_csv(&csv, Path::new("."), size).unwrap_err();
        assert!(matches!(err, NvsError::Size(e) if e == expected), "{err}");
    }
}

#[test]
fn keys_types_encodings_namespaces() {
    let cases: [(&str, &str); 9] = [
        ("waytoolongkeyname,data,u8,1\n", "at most 15 bytes"),
        ("ключ,data,u8,1\n", "printable ASCII"),
        (",data,u8,1\n", "key is empty"),
        ("k,dat,u8,1\n", "unknown type `dat`"),
        ("k,data,U8,1\n", "unknown encoding `U8`"),
        ("other,namespace,u8,\n", "takes no encoding or value"),
        ("k,data,binary,grüße\n", "must be ASCII"),
        ("k,file,binary,does-not-exist.bin\n", "cannot read"),
        ("ap.ssid,file,string,ssid.txt\n", "needs it as type data"),
    ];
    for (row, words) in cases {
        let err = refuse(row, 0x3000);
        assert!(
            matches!(err, NvsError::Entry { line: 3, .. }),
            "{row}: {err}"
        );
        assert!(err.to_string().contains(words), "{row}: {err}");
    }
    let err = nvs::image_from_csv(
        "key,type,encoding,value\nk,data,u8,1\n",
        Path::new("."),
        0x3000,
    )
    .unwrap_err();
    message(&err, "k", "before any namespace");
    let err = refuse(
        "a,data,u8,1\nsecond,namespace,,\nb,data,u8,2\nns,namespace,,\nc,data,u8,3\n",
        0x3000,
    );
    message(&err, "ns", "keep each namespace's rows together");
    let err = nvs::image_from_csv("key,type,value\n", Path::new("."), 0x3000).unwrap_err();
    assert!(matches!(err, NvsError::Header { .. }), "{err}");
    let err = refuse("k,data,u8,1,extra\n", 0x3000);
    assert!(
        matches!(err, NvsError::ExtraFields { line: 3, count: 5 }),
        "{err}"
    );
}

const CONFIG: &str = "dev,namespace,\nserial,data,string\ncount,data,u8\nblob,data,hex2bin\n";

fn batch(values: &str, size: u32) -> Batch {
    Batch::new(CONFIG, values, size, Path::new(".")).unwrap()
}

#[test]
fn mass_rows_name_the_row_id_and_key() {
    let b = batch(
        "id,serial,count,blob\nB-1,S1,300,00\nB-2,S2,-1,00\nB-3,S3,1,0g\nB-4,S4,1,00\n",
        0x3000,
    );
    let errors = b.check();
    assert_eq!(errors.len(), 3, "{errors:?}");
    let text = message(&errors[0], "count", "300 does not fit u8");
    assert!(text.starts_with("row `B-1`, key `count`"), "{text}");
    assert!(
        errors[1].to_string().starts_with("row `B-2`, key `count`"),
        "{}",
        errors[1]
    );
    assert!(
        errors[2].to_string().starts_with("row `B-3`, key `blob`"),
        "{}",
        errors[2]
    );
    assert!(b.image(&RowId::new("B-4")).is_ok());
    assert!(matches!(
        b.image(&RowId::new("B-9")),
        Err(MassError::UnknownRow(_))
    ));

    let big = format!(
        "id,serial,count,blob\nB-1,{},1,00\nB-2,S,1,{}\n",
        "s".repeat(4000),
        "ab".repeat(9000)
    );
    let errors = batch(&big, 0x3000).check();
    assert!(
        matches!(
            &errors[0],
            MassError::Entry {
                problem: Problem::StringTooLong { .. },
                ..
            }
        ),
        "{}",
        errors[0]
    );
    assert!(
        matches!(
            &errors[1],
            MassError::Entry {
                problem: Problem::DoesNotFit { .. },
                ..
            }
        ),
        "{}",
        errors[1]
    );
    assert!(
        errors[1].to_string().starts_with("row `B-2`, key `blob`"),
        "{}",
        errors[1]
    );
}

#[test]
fn mass_values_file_shape() {
    let err = Batch::new(
        CONFIG,
        "id,serial,blob,count\nB-1,S,00,1\n",
        0x3000,
        Path::new("."),
    )
    .unwrap_err();
    assert!(matches!(err, MassError::Header { .. }), "{err}");
    let err = Batch::new(
        CONFIG,
        "id,serial,count,blob,notes\nB-1,S,1,00,x\n",
        0x3000,
        Path::new("."),
    )
    .unwrap_err();
    assert!(
        matches!(err, MassError::Header { .. }),
        "extra columns are refused, not dropped: {err}"
    );
    let err = Batch::new(
        CONFIG,
        "id,serial,count,blob\nB-1,S,1\n",
        0x3000,
        Path::new("."),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            MassError::CellCount {
                line: 2,
                count: 3,
                expected: 4
            }
        ),
        "{err}"
    );
    let err = Batch::new(
        CONFIG,
        "id,serial,count,blob\nB-1,S,1,00\nB-1,T,2,00\n",
        0x3000,
        Path::new("."),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            MassError::DuplicateRowId {
                line: 3,
                first: 2,
                ..
            }
        ),
        "{err}"
    );
    let err = Batch::new(
        CONFIG,
        "id,serial,count,blob\n,S,1,00\n",
        0x3000,
        Path::new("."),
    )
    .unwrap_err();
    assert!(matches!(err, MassError::EmptyRowId { line: 2 }), "{err}");
    let err = Batch::new(
        CONFIG,
        "id,serial,count,blob\nserial,S,1,00\n",
        0x3000,
        Path::new("."),
    )
    .unwrap_err();
    assert!(matches!(err, MassError::IdIsKey { .. }), "{err}");
    let err = Batch::new(
        CONFIG,
        "id,serial,count,blob\nB-1,\"two\nlines\",1,00\n",
        0x3000,
        Path::new("."),
    )
    .unwrap_err();
    assert!(matches!(err, MassError::MultiLine { .. }), "{err}");
    let repeat = "dev,namespace,\nserial,data,string,REPEAT\n";
    let err = Batch::new(repeat, "id,serial\nB-1,S\nB-2,T\n", 0x3000, Path::new(".")).unwrap_err();
    assert!(matches!(err, MassError::RepeatConflict { .. }), "{err}");
    message(&err, "serial", "REPEAT takes the first row's value");
}

#[test]
fn mass_config_lines() {
    type Expect = fn(&ConfigProblem) -> bool;
    let cases: [(&str, Expect); 7] = [
        (
            "dev,namespace,\nk,data,u64\n",
            |p| matches!(p, ConfigProblem::UnknownEncoding(e) if e == "u64"),
        ),
        ("dev,namespace,\nk,data\n", |p| {
            matches!(p, ConfigProblem::FieldCount(2))
        }),
        ("dev,namespace,\nk,blob,u8\n", |p| {
            matches!(p, ConfigProblem::UnknownType(_))
        }),
        ("k,data,u8\n", |p| matches!(p, ConfigProblem::NoNamespace)),
        ("dev,namespace,,REPEAT\n", |p| {
            matches!(p, ConfigProblem::NamespaceExtra)
        }),
        ("dev,namespace,\nnamespace,data,u8\n", |p| {
            matches!(p, ConfigProblem::ReservedWord(_))
        }),
        ("dev,namespace,\n# note,data,u8\n", |p| {
            matches!(p, ConfigProblem::Key(Problem::KeyIsComment))
        }),
    ];
    for (config, expected) in cases {
        let err = Batch::new(config, "id,k\nB-1,1\n", 0x3000, Path::new(".")).unwrap_err();
        match &err {
            MassError::Config { problem, .. } => assert!(expected(problem), "{config}: {err}"),
            other => panic!("{config}: {other}"),
        }
    }
}
