//! The flash image the way users meet it: each platform's image taken out of the layout with
//! skopeo and umoci and its `/flasher` run against a simulated board (arm64 under qemu), and,
//! where a Docker engine is reachable, `docker load` + `docker run` and a Dockerfile build.

use std::fs;
use std::path::Path;
use std::process::Command;

use e2e::{TAG, host_platform, run, sample_bundle, sample_image, static_flashers};
use esp_sim::{BoardConfig, Chip, FlashSize, Psram, SimBoard};
use testkit::tools::require;

/// Flashes a simulated board with `flasher` (a command prefix: the executable, or qemu and it)
/// and checks that the board's flash equals the flasher's own `--merge-out` plan.
fn flash_and_check(
    prefix: &[&Path],
    extra: &[&str],
    firmware: &Path,
    target: &str,
    chip: Chip,
    size: &str,
) {
    let mut config = BoardConfig::new(chip).flash_size(size.parse::<FlashSize>().unwrap());
    // A PSRAM variant is checked against the board's eFuses: give the board that PSRAM.
    if target.ends_with("r8") {
        config = config.psram(Psram::Mb8);
    }
    let board = SimBoard::start(config).unwrap();
    let mut cmd = Command::new(prefix[0]);
    cmd.args(&prefix[1..])
        .arg("--port")
        .arg(board.path())
        .args([
            "--chip",
            target,
            "--flash_size",
            size,
            "--before",
            "no-reset",
            "--after",
            "no-reset",
        ])
        .args(extra)
        .arg("--firmware-dir")
        .arg(firmware);
    let out = run(&mut cmd);
    println!("{}", String::from_utf8_lossy(&out.stderr));
    let flash = board.stop();

    let plan = firmware
        .parent()
        .unwrap()
        .join(format!("plan-{target}.bin"));
    let mut cmd = Command::new(prefix[0]);
    cmd.args(&prefix[1..])
        .args(["--chip", target, "--flash_size", size, "--merge-out"])
        .arg(&plan)
        .arg("--firmware-dir")
        .arg(firmware);
    run(&mut cmd);
    let plan = fs::read(&plan).unwrap();
    assert_eq!(plan.len(), flash.len(), "the plan covers the whole flash");
    assert!(plan == flash, "the board's flash differs from the plan");
}

#[test]
fn each_platform_runs_from_the_image_and_flashes_a_board() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, _) = sample_image(tmp.path(), "e2e-flash");
    let skopeo = require("skopeo");
    let umoci = require("umoci");
    let qemu = require("qemu-aarch64-static");
    for (arch, target, chip, size) in [
        ("amd64", "esp32", Chip::Esp32, "4MB"),
        ("arm64", "esp32s3r8", Chip::Esp32s3, "8MB"),
    ] {
        let single = tmp.path().join(format!("single-{arch}"));
        run(Command::new(&skopeo)
            .args(["copy", "--override-arch", arch])
            .arg(format!("oci:{}:{TAG}", layout.display()))
            .arg(format!("oci:{}:{TAG}", single.display())));
        let bundle = tmp.path().join(format!("bundle-{arch}"));
        run(Command::new(&umoci)
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:{TAG}", single.display()))
            .arg(&bundle));
        let rootfs = bundle.join("rootfs");
        let flasher = rootfs.join("flasher");
        let firmware = rootfs.join("firmware");
        match arch {
            "amd64" if host_platform().arch() == "amd64" => {
                flash_and_check(&[&flasher], &[], &firmware, target, chip, size)
            }
            // qemu-user lacks the termios2 ioctls that a baud change (and espflash's ESP32
            // crystal probe, which reads the host's rate) need: an S3 at the ROM's rate.
            "arm64" => flash_and_check(
                &[&qemu, &flasher],
                &["--baud", "115200"],
                &firmware,
                target,
                chip,
                size,
            ),
            _ => unreachable!("tests run on amd64 hosts"),
        }
    }
}

/// Whether a Docker engine answers.
fn docker_available() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `image` with a simulated board passed in the way that works for ptys: the host's
/// /dev/pts bind-mounted (a pty given with --device gives EIO or fails, devpts being per mount
/// namespace) and char major 136 allowed by a cgroup rule.
fn docker_flash(image: &str, target: &str, chip: Chip, size: &str) -> Vec<u8> {
    let mut config = BoardConfig::new(chip).flash_size(size.parse::<FlashSize>().unwrap());
    // A PSRAM variant is checked against the board's eFuses: give the board that PSRAM.
    if target.ends_with("r8") {
        config = config.psram(Psram::Mb8);
    }
    let board = SimBoard::start(config).unwrap();
    let pty = board
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let out = run(Command::new("docker").args([
        "run",
        "--rm",
        "-v",
        "/dev/pts:/host-pts",
        "--device-cgroup-rule",
        "c 136:* rwm",
        image,
        "--port",
        &format!("/host-pts/{pty}"),
        "--chip",
        target,
        "--flash_size",
        size,
        "--before",
        "no-reset",
        "--after",
        "no-reset",
    ]));
    println!("{}", String::from_utf8_lossy(&out.stderr));
    board.stop()
}

#[test]
fn docker_loads_runs_and_builds_the_image() {
    if !docker_available() {
        println!(
            "NOTICE: no Docker engine reachable (docker info failed): docker load/run/build not exercised"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let repo = format!("e2e-flash-{}", std::process::id());
    let (layout, archive) = sample_image(tmp.path(), &repo);
    let image = format!("{repo}:{TAG}");
    let out = run(Command::new("docker").arg("load").arg("-i").arg(&archive));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&image));

    // The expected flash: the plan of the same bundle, from the host platform's flasher.
    let rootfs = tmp.path().join("rootfs");
    imagegen::unpack::unpack(&layout, Some(TAG), "linux", host_platform().arch(), &rootfs).unwrap();
    let plan = tmp.path().join("plan.bin");
    run(Command::new(rootfs.join("flasher"))
        .args(["--chip", "esp32c3", "--flash_size", "4MB", "--merge-out"])
        .arg(&plan)
        .arg("--firmware-dir")
        .arg(rootfs.join("firmware")));
    let plan = fs::read(&plan).unwrap();

    let flash = docker_flash(&image, "esp32c3", Chip::Esp32c3, "4MB");
    assert!(
        flash == plan,
        "docker run: the board's flash differs from the plan"
    );

    // Dockerfiles/Dockerfile.flash over a prebuilt flasher and an `imagegen bundle` tree.
    let context = tmp.path().join("context");
    let arch = host_platform().arch();
    fs::create_dir_all(context.join("flasher").join(arch)).unwrap();
    fs::copy(
        static_flashers().join(arch).join("flasher"),
        context.join("flasher").join(arch).join("flasher"),
    )
    .unwrap();
    sample_bundle(&tmp.path().join("again"))
        .write_dir(&context.join("firmware"))
        .unwrap();
    let built = format!("{repo}-dockerfile:{TAG}");
    run(Command::new("docker")
        .args([
            "build",
            "-q",
            "--build-arg",
            &format!("TARGETARCH={arch}"),
            "-t",
            &built,
            "-f",
        ])
        .arg(testkit::workspace_root().join("Dockerfiles/Dockerfile.flash"))
        .arg(&context));
    let flash = docker_flash(&built, "esp32c3", Chip::Esp32c3, "4MB");
    assert!(
        flash == plan,
        "Dockerfile.flash: the board's flash differs from the plan"
    );

    let _ = Command::new("docker")
        .args(["rmi", "-f", &image, &built])
        .args(["amd64", "arm64"].map(|a| format!("{repo}:{a}-e2e-1.0.0")))
        .output();
}
