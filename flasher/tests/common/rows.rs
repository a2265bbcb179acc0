//! A station's per-board data in tests: a generated batch of rows, ESP-IDF's generator's
//! image of each row (the reference), an esp32s3 bundle, simulated boards with their own
//! MACs, the station's command line, and what a written board must hold.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{flasher, generated_build, stderr, write_bundle};
use esp_sim::{BoardConfig, SimBoard};
use firmware::chip::Chip;
use linedb::{Query, Record, Store};
use testkit::idf_build::BuildSpec;
use testkit::pg::PgServer;

/// The nvs partition of the generated table.
pub const NVS_OFFSET: usize = 0x9000;
pub const NVS_SIZE: usize = 0x6000;

pub const CONFIG: &str = "device,namespace,\n\
serial,data,string\n\
model,data,string,REPEAT\n\
unit,data,u32\n\
key,data,hex2bin\n";

/// One values row: (id, serial, unit, key).
pub fn row(n: u32) -> (String, String, String, String) {
    (
        format!("SN-{n:04}"),
        format!("AB{:06}", 1000 + n),
        (7000 + n).to_string(),
        format!("{:08x}{:08x}", n.wrapping_mul(0x0101_0101), !n),
    )
}

/// A config and a values file with `rows` rows in `dir`; returns the values path.
pub fn batch(dir: &Path, rows: u32) -> PathBuf {
    fs::write(dir.join("config.csv"), CONFIG).unwrap();
    let mut values = String::from("id,serial,model,unit,key\n");
    for n in 1..=rows {
        let (id, serial, unit, key) = row(n);
        let model = if n == 1 { "M1" } else { "" };
        values.push_str(&format!("{id},{serial},{model},{unit},{key}\n"));
    }
    fs::write(dir.join("values.csv"), values).unwrap();
    dir.join("values.csv")
}

/// The image ESP-IDF's generator makes for row `n`: the per-row CSV `mfg_gen.py` writes
/// (REPEAT filled in, `\r\n` line ends), run through `nvs_partition_gen.py generate`.
pub fn reference_image(n: u32) -> Vec<u8> {
    let (_, serial, unit, key) = row(n);
    let csv: String = [
        "key,type,encoding,value".to_string(),
        "device,namespace,,".to_string(),
        format!("serial,data,string,{serial}"),
        "model,data,string,M1".to_string(),
        format!("unit,data,u32,{unit}"),
        format!("key,data,hex2bin,{key}"),
    ]
    .iter()
    .map(|l| format!("{l}\r\n"))
    .collect();
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("input.csv"), csv).unwrap();
    let python = testkit::workspace_root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: create the venv and `pip install esp-idf-nvs-partition-gen` (bash .ci/run does)",
        python.display()
    );
    let out = Command::new(python)
        .args(["-m", "esp_idf_nvs_partition_gen", "generate"])
        .args(["input.csv", "out.bin", &format!("{NVS_SIZE:#x}")])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let image = fs::read(dir.path().join("out.bin")).unwrap();
    assert_eq!(image.len(), NVS_SIZE);
    image
}

/// An esp32s3 bundle in `dir`/fw with an app of `app_len` bytes; returns its merged image.
pub fn bundle(dir: &Path, app_len: usize) -> Vec<u8> {
    let mut spec = BuildSpec::new(Chip::Esp32s3);
    spec.app_len = app_len;
    let build = generated_build(&dir.join("build"), &spec);
    write_bundle(&dir.join("fw"), &[("esp32s3", &build)], None, true);
    let merged = dir.join("merged.bin");
    let fw = dir.join("fw");
    let out = flasher(&[
        "--chip",
        "esp32s3",
        "--flash_size",
        "4MB",
        "--firmware-dir",
        fw.to_str().unwrap(),
        "--merge-out",
        merged.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    fs::read(merged).unwrap()
}

pub fn mac(n: u8) -> String {
    format!("02:00:00:00:20:{n:02x}")
}

pub fn board(n: u8, faults: &str, realtime: bool) -> SimBoard {
    SimBoard::start(
        BoardConfig::new(esp_sim::Chip::Esp32s3)
            .mac(mac(n).parse().unwrap())
            .faults(faults.parse().unwrap())
            .realtime(realtime),
    )
    .unwrap()
}

/// The station's command line: the bundle, the batch in `dir`, then `ports`.
pub fn station_args(dir: &Path, ports: &[&SimBoard], extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--chip",
        "esp32s3",
        "--flash_size",
        "4MB",
        "--before",
        "no-reset",
        "--after",
        "no-reset",
    ]
    .map(String::from)
    .to_vec();
    let path = |p: PathBuf| p.to_str().unwrap().to_string();
    args.extend(["--firmware-dir".into(), path(dir.join("fw"))]);
    args.extend(["--nvs-config".into(), path(dir.join("config.csv"))]);
    args.extend(["--nvs-values".into(), path(dir.join("values.csv"))]);
    for b in ports {
        args.extend(["--port".into(), b.path().to_str().unwrap().into()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

pub fn run(args: &[String]) -> std::process::Output {
    flasher(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The embedded database the station keeps beside the values file.
pub fn db(dir: &Path) -> Store {
    Store::open(&format!("sqlite:{}", dir.join("values.csv.db").display())).unwrap()
}

/// The rows of the boards' records in the database, in record order.
pub fn recorded_rows(dir: &Path) -> Vec<String> {
    db(dir)
        .records(&Query::default())
        .unwrap()
        .into_iter()
        .filter_map(|r| r.row)
        .collect()
}

/// The database's bytes (its file and its write-ahead log), to check what it holds.
pub fn db_bytes(dir: &Path) -> Vec<u8> {
    let mut bytes = fs::read(dir.join("values.csv.db")).unwrap();
    bytes.extend(fs::read(dir.join("values.csv.db-wal")).unwrap_or_default());
    bytes
}

/// Row number of a row id (`SN-0003` is 3).
pub fn number(id: &str) -> u32 {
    id.strip_prefix("SN-").unwrap().parse().unwrap()
}

/// Checks that `flash` is the shared plan with row `id`'s image in the nvs partition.
pub fn assert_board_holds(flash: &[u8], shared: &[u8], id: &str) {
    let nvs = &flash[NVS_OFFSET..NVS_OFFSET + NVS_SIZE];
    assert!(
        nvs == reference_image(number(id)).as_slice(),
        "the nvs partition differs from the generator's image for {id}"
    );
    assert!(
        flash[..NVS_OFFSET] == shared[..NVS_OFFSET],
        "{id}: before nvs"
    );
    assert!(
        flash[NVS_OFFSET + NVS_SIZE..] == shared[NVS_OFFSET + NVS_SIZE..],
        "{id}: after nvs"
    );
}

/// The shared PostgreSQL server of this test binary; its password is in this process's
/// `PGPASSWORD` for the test's own queries.
pub fn server() -> &'static PgServer {
    static ENV: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    let server = PgServer::shared();
    ENV.get_or_init(|| {
        // SAFETY: set once, before any store of this binary reads the environment.
        unsafe { std::env::set_var("PGPASSWORD", server.password()) };
    });
    server
}

/// Every record of the database at `url`, oldest first.
pub fn records(url: &str) -> Vec<Record> {
    Store::open(url)
        .unwrap()
        .records(&Query::default())
        .unwrap()
}
