//! Port discovery without udev, against sysfs trees the tests build as the kernel lays them out:
//! USB-UART bridges, native USB (USB-Serial/JTAG), several boards, missing attributes. The
//! selectors pick the right port, the reset sequence matches the USB ids, a board that
//! re-enumerates is found again, and `--list-ports` shows it all. One test flashes the right one
//! of two simulated boards by its USB serial number.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{generated_build, stderr, write_bundle};
use esp_sim::{BoardConfig, SimBoard};
use espflash::connection::ResetBeforeOperation;
use firmware::chip::Chip;
use flasher::error::{ExitKind, PortError};
use flasher::port::select::Reset;
use flasher::port::sysfs::{self, Roots};
use flasher::port::{self, Link, ResolvedPort};
use serde_json::Value;
use testkit::idf_build::BuildSpec;

/// A sysfs tree and a device directory in a temporary directory.
struct Tree {
    _tmp: tempfile::TempDir,
    roots: Roots,
}

/// How a tty hangs off its USB interface.
#[derive(Clone, Copy)]
enum Kind {
    /// cdc_acm: the tty is a child of the interface (`ttyACM*`).
    Acm,
    /// A usb-serial driver: the tty is a child of a port device under the interface.
    Bridge(&'static str),
}

/// One USB serial port to put in the tree.
struct Usb<'a> {
    name: &'a str,
    path: &'a str,
    vid: &'a str,
    pid: &'a str,
    serial: Option<&'a str>,
    kind: Kind,
    devnum: &'a str,
}

impl Tree {
    fn new() -> Tree {
        let tmp = tempfile::tempdir().unwrap();
        let roots = Roots {
            sys: tmp.path().join("sys"),
            dev: tmp.path().join("dev"),
        };
        fs::create_dir_all(roots.sys.join("class/tty")).unwrap();
        fs::create_dir_all(&roots.dev).unwrap();
        // The root hub has ids too: the nearest USB device must win.
        let hub = roots.sys.join("devices/pci0000:00/0000:00:14.0/usb1");
        fs::create_dir_all(&hub).unwrap();
        fs::write(hub.join("idVendor"), "1d6b\n").unwrap();
        fs::write(hub.join("idProduct"), "0002\n").unwrap();
        Tree { _tmp: tmp, roots }
    }

    fn driver(&self, bus: &str, name: &str) -> PathBuf {
        let d = self
            .roots
            .sys
            .join("bus")
            .join(bus)
            .join("drivers")
            .join(name);
        fs::create_dir_all(&d).unwrap();
        d
    }

    /// Adds a USB serial port; `node` also creates `/dev/<name>` (an empty file).
    fn add(&self, u: &Usb, node: bool) {
        let device = self
            .roots
            .sys
            .join("devices/pci0000:00/0000:00:14.0/usb1")
            .join(u.path);
        fs::create_dir_all(&device).unwrap();
        fs::write(device.join("idVendor"), format!("{}\n", u.vid)).unwrap();
        fs::write(device.join("idProduct"), format!("{}\n", u.pid)).unwrap();
        if let Some(serial) = u.serial {
            fs::write(device.join("serial"), format!("{serial}\n")).unwrap();
        }
        fs::write(device.join("product"), "Test board\n").unwrap();
        let iface = device.join(format!("{}:1.0", u.path));
        fs::create_dir_all(&iface).unwrap();
        fs::write(iface.join("bInterfaceNumber"), "00\n").unwrap();
        let parent = match u.kind {
            Kind::Acm => {
                let _ = symlink(self.driver("usb", "cdc_acm"), iface.join("driver"));
                iface
            }
            Kind::Bridge(driver) => {
                let port = iface.join(u.name);
                fs::create_dir_all(&port).unwrap();
                symlink(self.driver("usb-serial", driver), port.join("driver")).unwrap();
                port
            }
        };
        let tty = parent.join("tty").join(u.name);
        fs::create_dir_all(&tty).unwrap();
        fs::write(tty.join("dev"), format!("{}\n", u.devnum)).unwrap();
        // Relative links, as sysfs has them.
        symlink("../..", tty.join("device")).unwrap();
        let rel = Path::new("../..").join(tty.strip_prefix(&self.roots.sys).unwrap());
        symlink(rel, self.roots.sys.join("class/tty").join(u.name)).unwrap();
        if node {
            fs::write(self.roots.dev.join(u.name), b"").unwrap();
        }
    }

    /// A legacy UART (`ttyS0`) on a platform device, with its node.
    fn add_uart(&self) {
        let tty = self.roots.sys.join("devices/platform/serial8250/tty/ttyS0");
        fs::create_dir_all(&tty).unwrap();
        fs::write(tty.join("dev"), "4:64\n").unwrap();
        symlink("../..", tty.join("device")).unwrap();
        symlink(
            "../../devices/platform/serial8250/tty/ttyS0",
            self.roots.sys.join("class/tty/ttyS0"),
        )
        .unwrap();
        fs::write(self.roots.dev.join("ttyS0"), b"").unwrap();
        // A virtual console: no device behind it, not a serial port.
        let tty0 = self.roots.sys.join("devices/virtual/tty/tty0");
        fs::create_dir_all(&tty0).unwrap();
        symlink(
            "../../devices/virtual/tty/tty0",
            self.roots.sys.join("class/tty/tty0"),
        )
        .unwrap();
    }

    fn node(&self, name: &str) -> String {
        self.roots.dev.join(name).display().to_string()
    }
}

const JTAG_A: &str = "F4:12:FA:00:00:0A";
const JTAG_B: &str = "F4:12:FA:00:00:0B";

/// Two CP2102 and CH340 boards, two native-USB boards (one not passed into the container), an
/// Arduino (not an ESP board), a legacy UART and a virtual console.
fn bench() -> Tree {
    let t = Tree::new();
    for (u, node) in [
        (
            Usb {
                name: "ttyUSB0",
                path: "1-1.1",
                vid: "10c4",
                pid: "ea60",
                serial: Some("0001"),
                kind: Kind::Bridge("cp210x"),
                devnum: "188:0",
            },
            true,
        ),
        (
            // A CH340 without a serial number: only its USB path tells it apart.
            Usb {
                name: "ttyUSB1",
                path: "1-1.2",
                vid: "1a86",
                pid: "7523",
                serial: None,
                kind: Kind::Bridge("ch341-uart"),
                devnum: "188:1",
            },
            true,
        ),
        (
            Usb {
                name: "ttyACM0",
                path: "1-1.4",
                vid: "303a",
                pid: "1001",
                serial: Some(JTAG_A),
                kind: Kind::Acm,
                devnum: "166:0",
            },
            true,
        ),
        (
            Usb {
                name: "ttyACM1",
                path: "1-2",
                vid: "303a",
                pid: "1001",
                serial: Some(JTAG_B),
                kind: Kind::Acm,
                devnum: "166:1",
            },
            false,
        ),
        (
            Usb {
                name: "ttyACM2",
                path: "1-3",
                vid: "2341",
                pid: "0043",
                serial: Some("ARDUINO"),
                kind: Kind::Acm,
                devnum: "166:2",
            },
            true,
        ),
    ] {
        t.add(&u, node);
    }
    t.add_uart();
    t
}

fn resolve(t: &Tree, spec: &str) -> Result<Vec<String>, PortError> {
    port::resolve(spec, &t.roots).map(|v| v.into_iter().map(|r| r.port).collect())
}

#[test]
fn sysfs_shows_bridges_native_usb_and_missing_attributes() {
    let t = bench();
    let ports = sysfs::scan(&t.roots).unwrap();
    let names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "ttyACM0", "ttyACM1", "ttyACM2", "ttyS0", "ttyUSB0", "ttyUSB1"
        ]
    );
    let by = |n: &str| ports.iter().find(|p| p.name == n).unwrap();

    let cp = by("ttyUSB0");
    let u = cp.usb.as_ref().unwrap();
    assert_eq!((u.vid, u.pid), (0x10c4, 0xea60));
    assert_eq!(u.serial.as_deref(), Some("0001"));
    assert_eq!(u.path, "1-1.1");
    assert_eq!(u.interface, Some(0));
    assert_eq!(u.product.as_deref(), Some("Test board"));
    assert_eq!(cp.driver.as_deref(), Some("cp210x"));
    assert_eq!(cp.devnum, Some((188, 0)));
    assert_eq!(
        cp.node.as_deref(),
        Some(t.roots.dev.join("ttyUSB0").as_path())
    );

    let ch = by("ttyUSB1").usb.as_ref().unwrap();
    assert_eq!(
        (ch.vid, ch.pid, ch.serial.as_deref()),
        (0x1a86, 0x7523, None)
    );
    assert_eq!(by("ttyUSB1").driver.as_deref(), Some("ch341-uart"));

    let jtag = by("ttyACM0");
    assert_eq!(jtag.usb.as_ref().unwrap().serial.as_deref(), Some(JTAG_A));
    assert_eq!(jtag.driver.as_deref(), Some("cdc_acm"));
    assert_eq!(by("ttyACM1").node, None, "not passed into the container");

    let uart = by("ttyS0");
    assert!(uart.usb.is_none());
    assert_eq!(uart.devnum, Some((4, 64)));

    // The reset each port gets: USB-Serial/JTAG for 303a:1001 only.
    assert_eq!(Reset::for_usb(jtag.usb.as_ref()), Reset::UsbJtag);
    for n in ["ttyUSB0", "ttyUSB1", "ttyACM2", "ttyS0"] {
        assert_eq!(Reset::for_usb(by(n).usb.as_ref()), Reset::DtrRts, "{n}");
    }
}

#[test]
fn selectors_pick_the_right_port() {
    let t = bench();
    assert_eq!(
        resolve(&t, &format!("usb-serial={JTAG_A}")).unwrap(),
        [t.node("ttyACM0")]
    );
    assert_eq!(resolve(&t, "usb-path=1-1.2").unwrap(), [t.node("ttyUSB1")]);
    assert_eq!(
        resolve(&t, "usb-id=10c4:ea60").unwrap(),
        [t.node("ttyUSB0")]
    );
    assert_eq!(
        resolve(&t, "usb-id=303a,usb-path=1-1.4").unwrap(),
        [t.node("ttyACM0")]
    );
    // Every ESP-looking port in the container: not the Arduino, not the absent board.
    assert_eq!(
        resolve(&t, "auto").unwrap(),
        [t.node("ttyACM0"), t.node("ttyUSB0"), t.node("ttyUSB1")]
    );
    // A path stands for itself, with its sysfs details.
    let r = port::resolve(&t.node("ttyUSB0"), &t.roots).unwrap();
    assert_eq!(r[0].info.as_ref().unwrap().name, "ttyUSB0");

    let e = resolve(&t, "usb-id=303a:1001").unwrap_err();
    assert_eq!(e.kind(), ExitKind::Usage);
    let text = e.to_string();
    assert!(
        text.contains("matches 2 ports") && text.contains(JTAG_A) && text.contains(JTAG_B),
        "{text}"
    );
    let e = resolve(&t, "usb-serial=NOPE").unwrap_err();
    assert_eq!(e.kind(), ExitKind::Device);
    assert!(e.to_string().contains("seen: ttyACM0 303a:1001"), "{e}");
    let e = resolve(&t, &format!("usb-serial={JTAG_B}")).unwrap_err();
    assert_eq!(e.kind(), ExitKind::Device);
    assert!(e.to_string().contains("--device=/dev/ttyACM1"), "{e}");
    let e = resolve(&t, "usb-colour=red").unwrap_err();
    assert_eq!(e.kind(), ExitKind::Usage);

    // Nothing ESP-looking in the container.
    let empty = Tree::new();
    empty.add_uart();
    let e = resolve(&empty, "auto").unwrap_err();
    assert!(e.to_string().contains("no USB serial ports seen"), "{e}");
}

#[test]
fn the_reset_follows_the_usb_ids_and_before_overrides_it() {
    let t = bench();
    let jtag = Link::prepare_with(&ResolvedPort::device(t.node("ttyACM0")), &t.roots).unwrap();
    assert_eq!(jtag.reset(), Reset::UsbJtag);
    let info = jtag.usb_port_info();
    assert_eq!((info.vid, info.pid), (0x303a, 0x1001));
    assert_eq!(info.serial_number.as_deref(), Some(JTAG_A));
    assert_eq!(
        jtag.enter_loader(ResetBeforeOperation::DefaultReset)
            .unwrap(),
        ResetBeforeOperation::UsbReset
    );
    assert_eq!(
        jtag.enter_loader(ResetBeforeOperation::NoReset).unwrap(),
        ResetBeforeOperation::NoReset
    );

    let bridge = Link::prepare_with(&ResolvedPort::device(t.node("ttyUSB0")), &t.roots).unwrap();
    assert_eq!(bridge.reset(), Reset::DtrRts);
    let info = bridge.usb_port_info();
    assert_eq!((info.vid, info.pid), (0x10c4, 0xea60));
    assert_eq!(
        bridge
            .enter_loader(ResetBeforeOperation::DefaultReset)
            .unwrap(),
        ResetBeforeOperation::DefaultReset
    );
    assert_eq!(
        bridge.enter_loader(ResetBeforeOperation::UsbReset).unwrap(),
        ResetBeforeOperation::UsbReset
    );

    // A port sysfs does not know: zeros, espflash's DTR/RTS sequences.
    let unknown = Link::prepare_with(&ResolvedPort::device("/dev/null"), &t.roots).unwrap();
    assert_eq!(
        (unknown.usb_port_info().vid, unknown.reset()),
        (0, Reset::DtrRts)
    );
}

#[test]
fn a_board_that_re_enumerates_is_found_again() {
    let t = bench();
    let old = port::resolve(&format!("usb-serial={JTAG_A}"), &t.roots)
        .unwrap()
        .remove(0);
    // The reset made the board leave and come back as ttyACM3.
    fs::remove_file(t.roots.dev.join("ttyACM0")).unwrap();
    fs::remove_file(t.roots.sys.join("class/tty/ttyACM0")).unwrap();
    let back = std::thread::spawn({
        let roots = t.roots.clone();
        move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            let tree = Tree {
                _tmp: tempfile::tempdir().unwrap(),
                roots,
            };
            tree.add(
                &Usb {
                    name: "ttyACM3",
                    path: "1-1.4",
                    vid: "303a",
                    pid: "1001",
                    serial: Some(JTAG_A),
                    kind: Kind::Acm,
                    devnum: "166:3",
                },
                true,
            );
        }
    });
    let link = Link::prepare_with(&old, &t.roots).unwrap();
    back.join().unwrap();
    assert_eq!(link.path(), t.node("ttyACM3"));
    assert_eq!(link.reset(), Reset::UsbJtag);

    // Without a serial number the USB path finds it; a board that never comes back is not found.
    let ch = sysfs::scan(&t.roots)
        .unwrap()
        .into_iter()
        .find(|p| p.name == "ttyUSB1")
        .unwrap();
    let usb = ch.usb.unwrap();
    assert_eq!(
        port::find_again(&usb, &t.roots, std::time::Duration::ZERO),
        Some(t.node("ttyUSB1"))
    );
    fs::remove_file(t.roots.dev.join("ttyUSB1")).unwrap();
    assert_eq!(
        port::find_again(&usb, &t.roots, std::time::Duration::from_millis(200)),
        None
    );
}

fn flasher_in(t: &Tree, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flasher"))
        .args(args)
        .env("FLASHER_SYSFS_ROOT", &t.roots.sys)
        .env("FLASHER_DEV_ROOT", &t.roots.dev)
        .output()
        .unwrap()
}

#[test]
fn list_ports_prints_a_table_and_json() {
    let t = bench();
    let out = flasher_in(&t, &["--list-ports"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 7, "{table}");
    assert!(
        lines[0].starts_with("PORT") && lines[0].contains("SERIAL"),
        "{table}"
    );
    let acm0 = lines.iter().find(|l| l.contains("ttyACM0 ")).unwrap();
    for word in ["303a:1001", JTAG_A, "1-1.4", "cdc_acm", "usb-jtag", "yes"] {
        assert!(acm0.contains(word), "{word} missing: {acm0}");
    }
    let absent = lines.iter().find(|l| l.contains("ttyACM1")).unwrap();
    assert!(absent.starts_with("- "), "{absent}");

    let out = flasher_in(&t, &["--list-ports", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ports: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ports = ports.as_array().unwrap();
    assert_eq!(ports.len(), 6);
    let usb0 = ports.iter().find(|p| p["name"] == "ttyUSB0").unwrap();
    assert_eq!(usb0["usb"]["vid"], "10c4");
    assert_eq!(usb0["usb"]["pid"], "ea60");
    assert_eq!(usb0["usb"]["serial"], "0001");
    assert_eq!(usb0["usb"]["path"], "1-1.1");
    assert_eq!(usb0["reset"], "dtr-rts");
    assert_eq!(usb0["esp"], true);
    assert_eq!(usb0["port"], t.node("ttyUSB0"));
    let uart = ports.iter().find(|p| p["name"] == "ttyS0").unwrap();
    assert_eq!(
        (uart["usb"].is_null(), &uart["esp"]),
        (true, &Value::Bool(false))
    );

    let out = flasher_in(&t, &["--list-ports", "--colour"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

/// A bundle for esp32s3 in `dir/fw`.
fn bundle(dir: &Path) -> PathBuf {
    let build = generated_build(&dir.join("build"), &BuildSpec::new(Chip::Esp32s3));
    write_bundle(&dir.join("fw"), &[("esp32s3", &build)], None, true);
    dir.join("fw")
}

/// Puts a simulated board into the tree as a native-USB port with serial `serial`.
fn plug(t: &Tree, board: &SimBoard, name: &str, path: &str, serial: &str) {
    let rdev = fs::metadata(board.path()).unwrap().rdev();
    let (major, minor) = sysfs::split_rdev(rdev);
    let devnum = format!("{major}:{minor}");
    t.add(
        &Usb {
            name,
            path,
            vid: "303a",
            pid: "1001",
            serial: Some(serial),
            kind: Kind::Acm,
            devnum: &devnum,
        },
        false,
    );
    symlink(board.path(), t.roots.dev.join(name)).unwrap();
}

#[test]
fn the_board_with_the_serial_number_is_written_and_no_other() {
    let t = Tree::new();
    let a = SimBoard::start(BoardConfig::new(esp_sim::Chip::Esp32s3)).unwrap();
    let b = SimBoard::start(BoardConfig::new(esp_sim::Chip::Esp32s3)).unwrap();
    plug(&t, &a, "ttyACM0", "1-1", JTAG_A);
    plug(&t, &b, "ttyACM1", "1-2", JTAG_B);
    let tmp = tempfile::tempdir().unwrap();
    let fw = bundle(tmp.path());
    let fw = fw.to_str().unwrap();
    let merged = tmp.path().join("merged.bin");
    let common = [
        "--chip",
        "esp32s3",
        "--flash_size",
        "4MB",
        "--firmware-dir",
        fw,
    ];
    let mut args = common.to_vec();
    args.extend(["--merge-out", merged.to_str().unwrap()]);
    let out = flasher_in(&t, &args);
    assert!(out.status.success(), "{}", stderr(&out));

    let selector = format!("usb-serial={JTAG_B}");
    let report = tmp.path().join("report.json");
    let mut args = common.to_vec();
    args.extend([
        "--port",
        &selector,
        "--before",
        "no-reset",
        "--after",
        "no-reset",
        "--report",
        report.to_str().unwrap(),
    ]);
    let out = flasher_in(&t, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let r: Value = serde_json::from_slice(&fs::read(&report).unwrap()).unwrap();
    assert!(r.to_string().contains(&t.node("ttyACM1")), "{r}");
    assert!(a.commands().is_empty(), "the other board was spoken to");
    assert!(
        b.stop() == fs::read(&merged).unwrap(),
        "the flash differs from the plan"
    );
    assert!(a.stop().iter().all(|&x| x == 0xFF));

    // Both boards match the vendor id: one line, exit 2, nothing touched.
    let a = SimBoard::start(BoardConfig::new(esp_sim::Chip::Esp32s3)).unwrap();
    let t = Tree::new();
    plug(&t, &a, "ttyACM0", "1-1", JTAG_A);
    let c = SimBoard::start(BoardConfig::new(esp_sim::Chip::Esp32s3)).unwrap();
    plug(&t, &c, "ttyACM1", "1-2", JTAG_B);
    for (spec, code, word) in [
        ("usb-id=303a", 2, "matches 2 ports"),
        (
            "usb-serial=MISSING",
            4,
            "no serial port matches --port usb-serial=MISSING",
        ),
        ("usb-path=", 2, "bad --port"),
    ] {
        let mut args = common.to_vec();
        args.extend(["--port", spec, "--before", "no-reset"]);
        let out = flasher_in(&t, &args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{spec}: {err}");
        assert_eq!(err.lines().count(), 1, "{spec}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(word),
            "{spec}: {err}"
        );
    }
    assert!(a.commands().is_empty() && c.commands().is_empty());
}
