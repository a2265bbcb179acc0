//! Fuzzing the parsers that take outside input: `manifest.json` (alone and through a whole plan),
//! `flasher_args.json` (imagegen's build reader), sdkconfig and `partitions.csv` (through the
//! plan of a bundle without manifest), binary partition tables, ESP image headers, and SLIP
//! framing of the board's replies.
//!
//! A mutation fuzzer without dependencies: valid inputs from a generated ESP-IDF build are
//! mutated (bit flips, random and interesting bytes and tokens, deletions, duplications,
//! splices, truncation) and fed to each parser; any panic is a finding. Deterministic for a
//! seed.
//!
//! * `fuzz_for_a_while` (ignored by default; `scripts/fuzz` runs it) runs for `FUZZ_SECONDS`
//!   (default 60) from `FUZZ_SEED` (default: the clock) and saves each panicking input under
//!   `target/fuzz-findings/`.
//! * `findings_stay_fixed` replays the inputs that once panicked, and the seeds, every time.

mod common;

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{generated_build, write_bundle};
use firmware::chip::Chip;
use flasher::plan::{self, Request};
use testkit::firmware::Rng;
use testkit::idf_build::BuildSpec;

/// Tokens that matter to the text formats, inserted whole.
const TOKENS: &[&str] = &[
    "\"",
    ",",
    "{",
    "}",
    "[",
    "]",
    ":",
    "\n",
    "#",
    "=",
    "0x",
    "0X",
    "k",
    "K",
    "M",
    "-1",
    "0",
    "4294967295",
    "4294967296",
    "99999999999999999999",
    "0xFFFFFFFF",
    "0x100000000",
    "app",
    "data",
    "ota_0",
    "factory",
    "otadata",
    "nvs",
    "ota",
    "phy",
    "encrypted",
    "readonly",
    "null",
    "true",
    "\"offset\"",
    "\"file\"",
    "\"size\"",
    "\"path\"",
    "../",
    "/",
    "\\",
    "\t",
    " ",
    "CONFIG_",
    "y",
    "\"\"",
    "\u{FFFD}",
    "\0",
];
/// Bytes that sit on boundaries.
const BYTES: &[u8] = &[
    0x00, 0x01, 0x7F, 0x80, 0xFF, 0xE9, 0xAA, 0x50, 0xEB, 0xC0, 0xDB, 0xDC, 0xDD,
];

/// Feeds one input to a parser.
type Run = Box<dyn Fn(&[u8])>;

/// One parser and the inputs it starts from.
struct Target {
    name: &'static str,
    seeds: Vec<Vec<u8>>,
    run: Run,
}

/// Valid inputs and the folders the file-based targets rewrite.
struct Setup {
    _dir: tempfile::TempDir,
    targets: Vec<Target>,
}

fn build_spec() -> BuildSpec {
    let mut spec = BuildSpec::new(Chip::Esp32c3);
    spec.app_len = 4096;
    spec
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let build = generated_build(&root.join("build"), &build_spec());
    let read = |p: &Path| fs::read(p).unwrap();

    // A bundle with manifest, one without (table as binary), one without (table as CSV).
    write_bundle(&root.join("with"), &[("esp32c3", &build)], None, true);
    write_bundle(&root.join("legacy"), &[("esp32c3", &build)], None, false);
    write_bundle(&root.join("csv"), &[("esp32c3", &build)], None, false);
    fs::remove_file(root.join("csv/esp32c3/artifacts/partition-table.bin")).unwrap();
    let manifest = read(&root.join("with/manifest.json"));
    let sdkconfig = read(&root.join("legacy/esp32c3/artifacts/sdkconfig"));
    let csv = read(&root.join("csv/esp32c3/artifacts/partitions.csv"));
    let table = read(&build.table.1);
    let bootloader = read(&build.bootloader.1);
    let app = read(&build.app.1);
    let flasher_args = read(&build.dir.join("flasher_args.json"));

    let plan_of = |bundle: PathBuf, file: PathBuf| {
        move |bytes: &[u8]| {
            fs::write(&file, bytes).unwrap();
            for mode in [
                None,
                Some(firmware::override_table::OverrideMode::NoFactory),
            ] {
                let _ = plan::make(&Request {
                    firmware_dir: bundle.clone(),
                    target: "esp32c3".parse().unwrap(),
                    flash_size: "4MB".parse().unwrap(),
                    override_pt: mode,
                });
            }
        }
    };
    let args_file = build.dir.join("flasher_args.json");
    let build_dir = build.dir.clone();
    let mut slip = Vec::new();
    for frame in [
        &[0x01, 0x08, 0x04, 0x00][..],
        &[0xC0, 0xDB, 0x00, 0xC0, 0xDB][..],
        &app[..64],
    ] {
        esp_sim::slip::encode_into(frame, &mut slip);
    }
    let targets = vec![
        Target {
            name: "manifest",
            seeds: vec![manifest.clone()],
            run: Box::new(|b| {
                let _ = firmware::manifest::Manifest::from_json(b);
            }),
        },
        Target {
            name: "manifest-plan",
            seeds: vec![manifest],
            run: Box::new(plan_of(root.join("with"), root.join("with/manifest.json"))),
        },
        Target {
            name: "flasher-args",
            seeds: vec![flasher_args],
            run: Box::new(move |b| {
                fs::write(&args_file, b).unwrap();
                let _ = imagegen::inputs::TargetInput::from_build_dir(None, &build_dir);
            }),
        },
        Target {
            name: "sdkconfig",
            seeds: vec![sdkconfig.clone()],
            run: Box::new(|b| {
                if let Ok(c) = firmware::sdkconfig::Sdkconfig::parse(&String::from_utf8_lossy(b)) {
                    let _ = c.number("CONFIG_PARTITION_TABLE_OFFSET");
                }
            }),
        },
        Target {
            name: "sdkconfig-plan",
            seeds: vec![sdkconfig],
            run: Box::new(plan_of(
                root.join("legacy"),
                root.join("legacy/esp32c3/artifacts/sdkconfig"),
            )),
        },
        Target {
            name: "csv-plan",
            seeds: vec![csv],
            run: Box::new(plan_of(
                root.join("csv"),
                root.join("csv/esp32c3/artifacts/partitions.csv"),
            )),
        },
        Target {
            name: "table-bin",
            seeds: vec![table],
            run: Box::new(|b| {
                let _ = firmware::partition::parse_table(b);
            }),
        },
        Target {
            name: "image",
            seeds: vec![bootloader, app],
            run: Box::new(|b| {
                let _ = firmware::esp_image::parse(b);
                let _ = firmware::esp_image::app_descriptor(b);
                let mut copy = b.to_vec();
                let _ = firmware::esp_image::patch_header(
                    &mut copy,
                    firmware::esp_image::HeaderPatch {
                        mode: Some(firmware::esp_image::FlashMode::Dio),
                        freq_code: Some(0),
                        size: Some(16 << 20),
                    },
                );
            }),
        },
        Target {
            name: "slip",
            seeds: vec![slip],
            run: Box::new(|b| {
                let mut decoder = esp_sim::slip::Decoder::new();
                for &byte in b {
                    if let Some(frame) = decoder.push(byte) {
                        let mut again = Vec::new();
                        esp_sim::slip::encode_into(&frame, &mut again);
                        let mut check = esp_sim::slip::Decoder::new();
                        let back: Vec<Vec<u8>> =
                            again.iter().filter_map(|&x| check.push(x)).collect();
                        assert_eq!(back, [frame], "SLIP does not round-trip");
                    }
                }
            }),
        },
    ];
    Setup { _dir: dir, targets }
}

/// One mutated input from `seeds`.
fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut pick = |n: usize| (rng.next_u64() % n.max(1) as u64) as usize;
    let mut data = seeds[pick(seeds.len())].clone();
    for _ in 0..1 + pick(8) {
        let len = data.len();
        let at = pick(len + 1);
        match pick(10) {
            0 if len > 0 => {
                let i = pick(len);
                data[i] ^= 1 << pick(8);
            }
            1 if len > 0 => {
                let i = pick(len);
                data[i] = BYTES[pick(BYTES.len())];
            }
            2 => data.insert(at, pick(256) as u8),
            3 if len > 0 => {
                let n = 1 + pick(len.min(64));
                let start = pick(len - n + 1);
                data.drain(start..start + n);
            }
            4 => {
                let token = TOKENS[pick(TOKENS.len())].as_bytes();
                data.splice(at..at, token.iter().copied());
            }
            5 if len > 0 => {
                let n = 1 + pick(len.min(256));
                let start = pick(len - n + 1);
                let copy = data[start..start + n].to_vec();
                data.splice(at..at, copy);
            }
            6 => data.truncate(at),
            7 if len >= 4 => {
                // A 32-bit little-endian field set to an edge value.
                let i = pick(len - 3);
                let v = [
                    0u32,
                    1,
                    0x7FFF_FFFF,
                    0x8000_0000,
                    0xFFFF_FFFF,
                    0x1000,
                    0xFFFF_F000,
                ][pick(7)];
                data[i..i + 4].copy_from_slice(&v.to_le_bytes());
            }
            8 if len > 0 => {
                // A digit run replaced by a large or negative number.
                let i = pick(len);
                let token = ["99999999999", "-1", "0x", "4294967296", "0"][pick(5)];
                let end = (i + 1 + pick(8)).min(len);
                data.splice(i..end, token.bytes());
            }
            _ => {
                let other = &seeds[pick(seeds.len())];
                if !other.is_empty() {
                    let start = pick(other.len());
                    let end = start + pick(other.len() - start + 1);
                    data.splice(at..at, other[start..end].iter().copied());
                }
            }
        }
    }
    data
}

/// Runs `f` and says whether it panicked, and with what.
fn panics(f: &dyn Fn(&[u8]), input: &[u8]) -> Option<String> {
    panic::catch_unwind(AssertUnwindSafe(|| f(input)))
        .err()
        .map(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        })
}

fn findings_dir() -> PathBuf {
    testkit::workspace_root().join("target/fuzz-findings")
}

#[test]
#[ignore = "runs for FUZZ_SECONDS; scripts/fuzz starts it"]
fn fuzz_for_a_while() {
    let seconds: u64 = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    let setup = setup();
    let mut rng = Rng::new(seed);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let quiet = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let mut runs = vec![0u64; setup.targets.len()];
    let mut found: Vec<(String, String, PathBuf)> = Vec::new();
    while Instant::now() < deadline {
        for (i, t) in setup.targets.iter().enumerate() {
            for _ in 0..50 {
                let input = mutate(&mut rng, &t.seeds);
                runs[i] += 1;
                if let Some(message) = panics(&*t.run, &input) {
                    let path =
                        findings_dir().join(format!("{}-{:016x}.bin", t.name, runs[i] ^ seed));
                    fs::create_dir_all(findings_dir()).unwrap();
                    fs::write(&path, &input).unwrap();
                    found.push((t.name.to_string(), message, path));
                }
            }
        }
    }
    panic::set_hook(quiet);
    println!("fuzz: seed {seed}, {seconds} s");
    for (t, n) in setup.targets.iter().zip(&runs) {
        println!("  {:16} {n:8} inputs", t.name);
    }
    let report: Vec<String> = found
        .iter()
        .map(|(t, m, p)| format!("{t}: {m} ({})", p.display()))
        .collect();
    assert!(
        found.is_empty(),
        "{} panicking inputs:\n{}",
        found.len(),
        report.join("\n")
    );
}

/// Inputs that once made a parser panic, as (target, bytes).
fn findings() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        // esp-idf-part subtracts a negative offset from the CSV without a check.
        ("csv-plan", b"init,data,phy,-11000,0x1actory".to_vec()),
        // ... also in a record too short to be a partition, before it notices.
        ("csv-plan", b"# Name,Type,SubType\nnvs,-1".to_vec()),
        // esp-idf-part unwraps an app subtype given as a bare number.
        (
            "csv-plan",
            b"nvs,data,nvs,0x9000,0x6000,\nfactory,app,factory,0x20000,0x100000,\n\
              ota_1,app,1,0x220000,0x100000,\n"
                .to_vec(),
        ),
    ]
}

#[test]
fn findings_stay_fixed() {
    let setup = setup();
    for (name, input) in findings() {
        let target = setup.targets.iter().find(|t| t.name == name).unwrap();
        assert_eq!(panics(&*target.run, &input), None, "{name}: {input:?}");
    }
    // The seeds themselves, and a fixed run of mutations, go through every parser.
    let mut rng = Rng::new(7);
    for t in &setup.targets {
        for seed in &t.seeds {
            assert_eq!(panics(&*t.run, seed), None, "{}: seed", t.name);
        }
        for _ in 0..200 {
            let input = mutate(&mut rng, &t.seeds);
            assert_eq!(panics(&*t.run, &input), None, "{}: {input:?}", t.name);
        }
    }
}
