//! Our NVS images against the reference generator (`esp-idf-nvs-partition-gen`) run on the
//! same CSV, byte for byte.

mod common;

use common::{HEADER, Rng, assert_same};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn integer_boundaries_of_every_width() {
    let mut csv = format!("{HEADER}ints,namespace,,\n");
    let bounds: [(&str, i128, i128); 8] = [
        ("u8", 0, u8::MAX.into()),
        ("i8", i8::MIN.into(), i8::MAX.into()),
        ("u16", 0, u16::MAX.into()),
        ("i16", i16::MIN.into(), i16::MAX.into()),
        ("u32", 0, u32::MAX.into()),
        ("i32", i32::MIN.into(), i32::MAX.into()),
        ("u64", 0, u64::MAX.into()),
        ("i64", i64::MIN.into(), i64::MAX.into()),
    ];
    for (enc, min, max) in bounds {
        csv += &format!(
            "{enc}_min,data,{enc},{min}\n{enc}_max,data,{enc},{max}\n{enc}_one,data,{enc},1\n"
        );
    }
    csv +=
        "spaced,data,u16, 42 \nsigned,data,i32,+7\nunder,data,u32,1_000_000\nzeros,data,u8,007\n";
    for size in [0x3000, 0x6000, 0x10000] {
        assert_same(&csv, size, &[]);
    }
}

#[test]
fn strings_of_every_length_class() {
    let mut csv =
        format!("{HEADER}text,namespace,,\nempty,data,string,\nshort,data,string,hello\n");
    csv += "quoted,data,string,\"a, \"\"quoted\"\" value\"\nutf8,data,string,grüße 日本\n";
    for len in [30, 31, 32, 33, 63, 64, 1000] {
        csv += &format!("s{len},data,string,{}\n", "x".repeat(len));
    }
    csv += &format!("longest,data,string,{}\n", "y".repeat(3967));
    for size in [0x3000, 0x6000, 0x10000] {
        assert_same(&csv, size, &[]);
    }
}

#[test]
fn blobs_hex2bin_base64_binary() {
    let mut rng = Rng::new(7);
    let mut csv =
        format!("{HEADER}blobs,namespace,,\nnone,data,hex2bin,\nhex,data,hex2bin,00aAfF10\n");
    csv += "spaced,data,hex2bin,  0102  \nb64,data,base64,QUJDRA==\nb64one,data,base64,QQ==\nb64two,data,base64,QUI=\n";
    csv += "b64empty,data,base64,\nraw,data,binary,plain ascii bytes\n";
    csv += &format!("page,data,hex2bin,{}\n", hex(&rng.bytes(4000)));
    csv += &format!("pages,data,hex2bin,{}\n", hex(&rng.bytes(9000)));
    for size in [0x6000, 0x10000] {
        assert_same(&csv, size, &[]);
    }
}

#[test]
fn file_entries_of_every_encoding() {
    let mut rng = Rng::new(11);
    let raw = rng.bytes(5000);
    let b64 = "SGVsbG8sIE5WUyE=\n";
    let csv = format!(
        "{HEADER}files,namespace,,\nbin,file,binary,blob.bin\ntext,file,string,text.txt\nhexf,file,hex2bin,hex.txt\n\
         b64f,file,base64,b64.txt\nnum,file,u32,num.txt\nneg,file,i16,neg.txt\n"
    );
    let files: [(&str, &[u8]); 6] = [
        ("blob.bin", &raw),
        ("text.txt", "line one\nline two\n".as_bytes()),
        ("hex.txt", b"deadbeef\n"),
        ("b64.txt", b64.as_bytes()),
        ("num.txt", b"123456\n"),
        ("neg.txt", b"-300"),
    ];
    for size in [0x3000, 0x6000, 0x10000] {
        assert_same(&csv, size, &files);
    }
}

#[test]
fn several_namespaces_and_comments() {
    let csv = format!(
        "{HEADER}# a comment line\nfirst,namespace,,\na,data,u8,1\nsecond,namespace,,\na,data,u8,2\nb,data,string,two\n\
         third,namespace,,\nthird,namespace,,\nc,data,i64,-3\n"
    );
    assert_same(&csv, 0x3000, &[]);
}

#[test]
fn strings_move_to_the_next_page_before_the_last_entry() {
    // 1 namespace entry + 120 u8 entries leave 5 entries: a 4-entry string (header + 3) would
    // end on entry 125, which the generator never uses for strings.
    let mut csv = format!("{HEADER}fill,namespace,,\n");
    for i in 0..120 {
        csv += &format!("k{i},data,u8,{}\n", i % 256);
    }
    csv += &format!("s,data,string,{}\nafter,data,u8,9\n", "z".repeat(90));
    assert_same(&csv, 0x3000, &[]);
}

#[test]
fn blob_starting_on_the_last_entry_and_ending_on_a_page_edge() {
    let mut rng = Rng::new(3);
    // 1 + 124 entries: the blob starts at entry 125 (an empty first chunk, as the generator writes).
    let mut csv = format!("{HEADER}edge,namespace,,\n");
    for i in 0..124 {
        csv += &format!("k{i},data,u8,1\n");
    }
    csv += &format!("blob,data,hex2bin,{}\n", hex(&rng.bytes(100)));
    // Page 1 now holds 6 entries; a 3808-byte blob fills its 119 free entries exactly with
    // header and data, so its index goes to page 2.
    csv += &format!("exact,data,hex2bin,{}\n", hex(&rng.bytes(119 * 32 - 32)));
    // On page 2 (1 entry used) a 3936-byte blob leaves exactly one entry: its index takes it.
    csv += &format!("oneleft,data,hex2bin,{}\n", hex(&rng.bytes(3936)));
    csv += "tail,data,u8,2\n";
    assert_same(&csv, 0x6000, &[]);
}

#[test]
fn wifi_credentials_get_the_derived_entries() {
    let csv = format!(
        "{HEADER}nvs.net80211,namespace,,\nap.ssid,data,string,Station-AP\nap.passwd,data,string,secret-pass\n\
         ap.authmode,data,u8,3\nsta.ssid,data,string,HomeNet\nsta.pswd,data,string,hunter22\n"
    );
    assert_same(&csv, 0x6000, &[]);
}

#[test]
fn random_mixes_match() {
    for seed in 1..=12 {
        let mut rng = Rng::new(seed);
        let mut csv = HEADER.to_string();
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        let mut used = 0usize;
        for ns in 0..1 + rng.below(3) {
            csv += &format!("ns{ns},namespace,,\n");
            for k in 0..rng.below(60) {
                let key = format!("k{ns}_{k}");
                let (line, cost) = random_entry(&mut rng, &key, &mut files);
                if used + cost > 40_000 {
                    break;
                }
                used += cost;
                csv += &line;
            }
        }
        let files: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        assert_same(&csv, 0x10000, &files);
    }
}

fn random_entry(rng: &mut Rng, key: &str, files: &mut Vec<(String, Vec<u8>)>) -> (String, usize) {
    let ints = ["u8", "i8", "u16", "i16", "u32", "i32", "u64", "i64"];
    match rng.below(6) {
        0 | 1 => {
            let enc = ints[rng.below(8) as usize];
            let v = rng.below(100);
            (format!("{key},data,{enc},{v}\n"), 32)
        }
        2 => {
            let max = if rng.below(4) == 0 { 3900 } else { 80 };
            let len = rng.below(max) as usize;
            (format!("{key},data,string,{}\n", "s".repeat(len)), len + 64)
        }
        3 => {
            let max = if rng.below(3) == 0 { 6000 } else { 100 };
            let len = rng.below(max) as usize;
            (
                format!("{key},data,hex2bin,{}\n", hex(&rng.bytes(len))),
                len + 96,
            )
        }
        4 => {
            use base64::Engine as _;
            let len = rng.below(300) as usize;
            let text = base64::engine::general_purpose::STANDARD.encode(rng.bytes(len));
            (format!("{key},data,base64,{text}\n"), len + 96)
        }
        _ => {
            let len = rng.below(2500) as usize;
            let name = format!("{key}.bin");
            files.push((name.clone(), rng.bytes(len)));
            (format!("{key},file,binary,{name}\n"), len + 96)
        }
    }
}
