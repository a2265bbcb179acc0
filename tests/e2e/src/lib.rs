//! Helpers for the end-to-end tests: the static flashers as `scripts/build-flasher` makes them,
//! a sample flash image built through the imagegen library, and running an image's `/flasher`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use firmware::chip::Chip;
use imagegen::bundle::{Bundle, Metadata};
use imagegen::flash_image;
use imagegen::inputs::TargetInput;
use imagegen::oci::{Layout, archive};
use imagegen::platform::Platform;
use imagegen::release::Release;
use testkit::idf_build::{BuildSpec, TableKind, write_build};
use testkit::workspace_root;

/// The index tag of the sample image.
pub const TAG: &str = "e2e-1.0.0";

/// Directory holding `<arch>/flasher` for amd64 and arm64, built once per test process with
/// `scripts/build-flasher` (static, release profile `dist`).
pub fn static_flashers() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = workspace_root().join("target/e2e-flashers");
        let out = Command::new(workspace_root().join("scripts/build-flasher"))
            .arg(&dir)
            .env("PLATFORMS", "amd64 arm64")
            .output()
            .expect("run scripts/build-flasher");
        assert!(
            out.status.success(),
            "scripts/build-flasher failed (run .ci/run to install the arm64 toolchain):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        print!("{}", String::from_utf8_lossy(&out.stdout));
        dir
    })
}

/// The platform of this machine.
pub fn host_platform() -> Platform {
    std::env::consts::ARCH
        .parse()
        .expect("tests run on amd64 or arm64 hosts")
}

/// The sample bundle: esp32 (bootloader at 0x1000), esp32s3 as `esp32s3r8` and esp32c3.
pub fn sample_bundle(dir: &Path) -> Bundle {
    let mut inputs = Vec::new();
    for (name, chip, table) in [
        ("esp32", Chip::Esp32, TableKind::FactoryAndOta),
        ("esp32s3r8", Chip::Esp32s3, TableKind::OtaOnly),
        ("esp32c3", Chip::Esp32c3, TableKind::FactoryOnly),
    ] {
        let mut spec = BuildSpec::new(chip);
        spec.table = table;
        spec.app_len = 300 * 1024;
        spec.seed = chip.image_chip_id().into();
        let build = dir.join("builds").join(name);
        write_build(&build, &spec).unwrap();
        inputs.push(TargetInput::from_build_dir(Some(name), &build).unwrap());
    }
    let metadata = Metadata {
        app_type: Some("e2e".into()),
        version: Some("1.0.0".into()),
        revision: None,
    };
    Bundle::new(inputs, None, &metadata).unwrap()
}

/// Builds the sample flash image with the static flashers as an OCI layout and an archive
/// (tags loaded under `repository`). Returns (layout, archive).
pub fn sample_image(dir: &Path, repository: &str) -> (PathBuf, PathBuf) {
    let flashers = static_flashers();
    let exes: Vec<(Platform, Vec<u8>)> = Platform::ALL
        .into_iter()
        .map(|p| {
            (
                p,
                std::fs::read(flashers.join(p.arch()).join("flasher")).unwrap(),
            )
        })
        .collect();
    let image = flash_image::build(&sample_bundle(dir), &exes, &Release::default()).unwrap();
    let layout_dir = dir.join("layout");
    let archive_path = dir.join("flash.tar");
    Layout::new(&layout_dir).write(image.store()).unwrap();
    let names = archive::DockerNames {
        repository: repository.into(),
        default_arch: host_platform().arch().into(),
    };
    archive::write(image.store(), &archive_path, &names).unwrap();
    (layout_dir, archive_path)
}

/// Runs `cmd`, returning its output; panics with both streams when it fails.
pub fn run(cmd: &mut Command) -> Output {
    testkit::tools::run_ok(cmd)
}
