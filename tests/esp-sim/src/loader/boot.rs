//! What the board prints when it is reset into its firmware: the ROM's banner and loader lines,
//! the second-stage bootloader's log and the app's start-up banner, all worked out from the
//! flash as the ROM and ESP-IDF's bootloader read it. A flash that does not boot prints what the
//! real chip prints then (`invalid header: 0xffffffff`, an app the bootloader refuses).
//!
//! The reset arrives as the RTC watchdog reset espflash performs for `--after watchdog-reset`
//! (RTC_CNTL WDT key, config1, config0 with the enable and chip-reset bits): the log is sent
//! once the host has finished that sequence. The board then answers the loader again, as one
//! whose boot pin is held low would after its next reset.

use std::fmt::Write as _;

use super::{Loader, Responder, lock};
use crate::chip::Chip;
use crate::crypt::FlashKey;
use crate::efuse::EfuseController;

#[path = "boot_flash.rs"]
mod boot_flash;
pub(crate) use boot_flash::Encryption;
use boot_flash::{BootFlash, Corrupt, verify};

/// RTC WDT config0: watchdog enable.
const WDT_EN: u32 = 1 << 31;
/// RTC WDT config0: the watchdog resets the chip.
const WDT_CHIP_RESET_EN: u32 = 1 << 8;
/// First byte of an ESP image.
const IMAGE_MAGIC: u8 = 0xE9;
/// First word of `esp_app_desc_t`.
const APP_DESC_MAGIC: u32 = 0xABCD_5432;
/// Where ESP-IDF's bootloader reads the partition table (`CONFIG_PARTITION_TABLE_OFFSET`).
const TABLE_OFFSET: usize = 0x8000;
/// The partition table's size.
const TABLE_SIZE: usize = 0xC00;

/// The RTC watchdog registers of `chip` (write protect, config0), as espflash uses them.
fn wdt_registers(chip: Chip) -> Option<(u32, u32)> {
    match chip {
        Chip::Esp32c3 => Some((0x6000_80A8, 0x6000_8090)),
        Chip::Esp32s2 => Some((0x3F40_80AC, 0x3F40_8094)),
        Chip::Esp32s3 => Some((0x6000_80B0, 0x6000_8098)),
        // LP_WDT (esptool's esp32c6.py, `watchdog_reset`).
        Chip::Esp32c6 => Some((0x600B_1C18, 0x600B_1C00)),
        _ => None,
    }
}

/// Whether a reset is on its way, and the log it prints.
#[derive(Debug, Default)]
pub(crate) struct BootState {
    /// The watchdog is armed to reset the chip.
    armed: bool,
    /// The log of a reset that happened, not yet sent.
    log: Option<Vec<u8>>,
}

impl Loader {
    /// Watches register writes for the watchdog reset: armed by config0, fired when the host
    /// writes the protect register again (the last step of its sequence).
    pub(super) fn watch_reset(&mut self, addr: u32, value: u32) {
        let Some((wprotect, config0)) = wdt_registers(self.chip) else {
            return;
        };
        if addr == config0 && value & (WDT_EN | WDT_CHIP_RESET_EN) == WDT_EN | WDT_CHIP_RESET_EN {
            self.boot.armed = true;
        } else if addr == wprotect && self.boot.armed {
            self.boot.armed = false;
            // The reset ends the stub and any transfer, and the ROM reads the eFuses again.
            self.reset_security();
            let encryption = self.encryption();
            let flash = lock(&self.flash).contents().to_vec();
            self.boot.log = Some(boot_log(self.chip, &flash, encryption.as_ref()).into_bytes());
            self.responder = Responder::Rom;
            self.write = None;
            self.mem = None;
            self.read = None;
        }
    }

    fn encryption(&self) -> Option<Encryption> {
        encryption(&lock(self.efuses.as_ref()?))
    }

    /// The log of a reset that happened since the last call, to send after the reply.
    pub(crate) fn take_boot_log(&mut self) -> Option<Vec<u8>> {
        self.boot.log.take()
    }
}

/// Flash encryption as the eFuses set it: on when the crypt counter has an odd number of bits,
/// with the key of the key block whose purpose is flash encryption (all zeros if none).
pub(crate) fn encryption(efuses: &EfuseController) -> Option<Encryption> {
    let cnt = efuses.crypt_cnt();
    if cnt.count_ones().is_multiple_of(2) {
        return None;
    }
    let release = efuses.crypt_cnt_write_protected();
    let unset = efuses.crypt_cnt_width() - cnt.count_ones();
    Some(Encryption {
        key: FlashKey::from_efuses(efuses).unwrap_or(FlashKey::Xts128([0; 32])),
        flashes_left: if release { 0 } else { unset / 2 },
        release,
    })
}

/// One image segment: load address and data range in the flash.
struct Segment {
    addr: u32,
    start: usize,
    len: usize,
}

/// The header fields and segments of the image at `at`, or the header word the ROM shows when
/// it is not an image.
fn image(flash: &[u8], at: usize) -> Result<(ImageHeader, Vec<Segment>), u32> {
    let word = |i: usize| {
        flash.get(i..i + 4).map_or(0xFFFF_FFFF, |b| {
            u32::from_le_bytes([b[0], b[1], b[2], b[3]])
        })
    };
    if flash.get(at) != Some(&IMAGE_MAGIC) || flash.get(at + 1).is_none_or(|&n| n == 0 || n > 16) {
        return Err(word(at));
    }
    let header = ImageHeader {
        entry: word(at + 4),
        min_rev_full: u16::from_le_bytes([flash[at + 15], flash[at + 16]]),
    };
    let mut segments = Vec::new();
    let mut pos = at + 24;
    for _ in 0..flash[at + 1] {
        let (addr, len) = (word(pos), word(pos + 4) as usize);
        if pos + 8 + len > flash.len() {
            return Err(word(at));
        }
        segments.push(Segment {
            addr,
            start: pos + 8,
            len,
        });
        pos += 8 + len;
    }
    Ok((header, segments))
}

struct ImageHeader {
    entry: u32,
    /// `min_chip_rev_full`: major * 100 + minor.
    min_rev_full: u16,
}

/// The ROM's first lines for `chip` after a watchdog reset. Chips whose ROM build string is not
/// modelled print the banner's shape with the chip's name alone.
fn rom_banner(chip: Chip) -> &'static str {
    match chip {
        Chip::Esp32c2 | Chip::Esp32c5 | Chip::Esp32c61 | Chip::Esp32p4 => generic_banner(chip),
        Chip::Esp32 => {
            "ets Jul 29 2019 12:21:46\n\nrst:0x10 (RTCWDT_RTC_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\nconfigsip: 0, SPIWP:0xee\nclk_drv:0x00,q_drv:0x00,d_drv:0x00,cs0_drv:0x00,hd_drv:0x00,wp_drv:0x00\nmode:DIO, clock div:2\n"
        }
        Chip::Esp32s2 => {
            "ESP-ROM:esp32s2-rc4-20191025\nBuild:Oct 25 2019\nrst:0x10 (RTCWDT_RTC_RST),boot:0x8 (SPI_FAST_FLASH_BOOT)\nSPIWP:0xee\nmode:DIO, clock div:1\n"
        }
        Chip::Esp32s3 => {
            "ESP-ROM:esp32s3-20210327\nBuild:Mar 27 2021\nrst:0x10 (RTCWDT_RTC_RST),boot:0x8 (SPI_FAST_FLASH_BOOT)\nSaved PC:0x40375b4c\nSPIWP:0xee\nmode:DIO, clock div:1\n"
        }
        Chip::Esp32c3 => {
            "ESP-ROM:esp32c3-api1-20210207\nBuild:Feb  7 2021\nrst:0x10 (RTCWDT_RTC_RST),boot:0xc (SPI_FAST_FLASH_BOOT)\nSaved PC:0x40048b82\nSPIWP:0xee\nmode:DIO, clock div:1\n"
        }
        Chip::Esp32c6 => {
            "ESP-ROM:esp32c6-20220919\nBuild:Sep 19 2022\nrst:0x10 (LP_WDT_SYS),boot:0xc (SPI_FAST_FLASH_BOOT)\nSaved PC:0x4001975a\nSPIWP:0xee\nmode:DIO, clock div:2\n"
        }
        Chip::Esp32h2 => {
            "ESP-ROM:esp32h2-20221101\nBuild:Nov  1 2022\nrst:0x10 (LP_WDT_SYS),boot:0xc (SPI_FAST_FLASH_BOOT)\nSaved PC:0x400199f0\nSPIWP:0xee\nmode:DIO, clock div:1\n"
        }
    }
}

/// The banner's shape for a chip without a modelled ROM build string.
fn generic_banner(chip: Chip) -> &'static str {
    match chip {
        Chip::Esp32c2 => {
            "ESP-ROM:esp32c2\nrst:0x10 (RTCWDT_RTC_RST),boot:0xc (SPI_FAST_FLASH_BOOT)\nSPIWP:0xee\nmode:DIO, clock div:1\n"
        }
        Chip::Esp32c5 => {
            "ESP-ROM:esp32c5\nrst:0x10 (LP_WDT_SYS),boot:0xc (SPI_FAST_FLASH_BOOT)\nSPIWP:0xee\nmode:DIO, clock div:1\n"
        }
        Chip::Esp32c61 => {
            "ESP-ROM:esp32c61\nrst:0x10 (LP_WDT_SYS),boot:0xc (SPI_FAST_FLASH_BOOT)\nSPIWP:0xee\nmode:DIO, clock div:1\n"
        }
        _ => {
            "ESP-ROM:esp32p4\nrst:0x10 (LP_WDT_SYS),boot:0xc (SPI_FAST_FLASH_BOOT)\nSPIWP:0xee\nmode:DIO, clock div:1\n"
        }
    }
}

/// Where the ROM loads the second-stage bootloader from.
fn bootloader_offset(chip: Chip) -> usize {
    chip.bootloader_offset() as usize
}

/// Everything the board prints from its reset to the app's `app_main`, CRLF line endings as
/// ESP-IDF's console sends them. With flash encryption on, the boot reads the flash decrypted.
pub(crate) fn boot_log(chip: Chip, raw: &[u8], encryption: Option<&Encryption>) -> String {
    let mut log = rom_banner(chip).to_string();
    let mut flash = BootFlash::new(raw, encryption);
    let at = bootloader_offset(chip);
    flash.reveal(at, TABLE_OFFSET + TABLE_SIZE - at);
    match rom_load(flash.bytes(), at) {
        Err(text) => {
            // The ROM retries the boot, printing the same line each time.
            for _ in 0..3 {
                let _ = writeln!(log, "{text}");
            }
        }
        Ok((header, segments)) => {
            for s in &segments {
                let _ = writeln!(log, "load:{:#010x},len:{:#x}", s.addr, s.len);
            }
            let _ = writeln!(log, "entry {:#010x}", header.entry);
            second_stage(chip, &mut flash, encryption, &mut log);
        }
    }
    log.replace('\n', "\r\n")
}

/// The data ranges of `segments`.
fn data_ranges(segments: &[Segment]) -> Vec<std::ops::Range<usize>> {
    segments.iter().map(|s| s.start..s.start + s.len).collect()
}

/// The bootloader image as the ROM loads it, or the line the ROM prints when it will not.
fn rom_load(flash: &[u8], at: usize) -> Result<(ImageHeader, Vec<Segment>), String> {
    let (header, segments) =
        image(flash, at).map_err(|word| format!("invalid header: {word:#010x}"))?;
    match verify(flash, at, &data_ranges(&segments)) {
        Ok(()) => Ok((header, segments)),
        Err(Corrupt::Checksum { calculated, stored }) => Err(format!(
            "Checksum failure. Calculated {calculated:#04x} stored {stored:#04x}"
        )),
        Err(Corrupt::Hash) => Err("SHA-256 comparison failed".to_owned()),
    }
}

/// The app image at `at` as the bootloader loads it, or the tag and text of its refusal.
fn app_image(flash: &[u8], at: usize) -> Result<Vec<Segment>, (&'static str, String)> {
    let (header, segments) = image(flash, at).map_err(|_| {
        let text = format!("image at {at:#x} has invalid magic byte (nothing flashed here?)");
        ("esp_image", text)
    })?;
    if header.min_rev_full > 0 {
        let (major, minor) = (header.min_rev_full / 100, header.min_rev_full % 100);
        let text = format!("Image requires chip rev >= v{major}.{minor}, but chip is v0.0");
        return Err(("boot_comm", text));
    }
    match verify(flash, at, &data_ranges(&segments)) {
        Ok(()) => Ok(segments),
        Err(Corrupt::Checksum { calculated, stored }) => Err((
            "esp_image",
            format!("Checksum failed. Calculated {calculated:#x} read {stored:#x}"),
        )),
        Err(Corrupt::Hash) => Err((
            "esp_image",
            "Image hash failed - image is corrupt".to_owned(),
        )),
    }
}

/// A log line with ESP-IDF's level, time stamp and tag.
fn line(log: &mut String, ms: &mut u32, level: char, tag: &str, text: &str) {
    *ms += 3;
    let _ = writeln!(log, "{level} ({ms}) {tag}: {text}");
}

/// The second-stage bootloader: the partition table, the app it picks, the app's banner.
fn second_stage(
    chip: Chip,
    boot_flash: &mut BootFlash,
    encryption: Option<&Encryption>,
    log: &mut String,
) {
    let flash = boot_flash.bytes();
    let mut ms = 20;
    line(
        log,
        &mut ms,
        'I',
        "boot",
        "ESP-IDF v5.2.1 2nd stage bootloader",
    );
    line(log, &mut ms, 'I', "boot", "chip revision: v0.0");
    let Some(parts) = read_partitions(flash, &mut ms, log) else {
        return;
    };
    let Some(app) = parts
        .iter()
        .find(|p| p.ty == 0 && p.subtype == 0)
        .or_else(|| parts.iter().find(|p| p.ty == 0 && p.subtype == 0x10))
    else {
        line(
            log,
            &mut ms,
            'E',
            "boot",
            "No bootable app partitions in the partition table",
        );
        return;
    };
    let at = app.offset as usize;
    let size = app.size as usize;
    boot_flash.reveal_image(at, size);
    let flash = boot_flash.bytes();
    match app_image(flash, at) {
        Ok(segments) => return app_start(chip, (flash, at), &segments, encryption, &mut ms, log),
        Err((tag, text)) => line(log, &mut ms, 'E', tag, &text),
    }
    let label = &app.label;
    line(
        log,
        &mut ms,
        'E',
        "boot",
        &format!("{label} app partition is not bootable"),
    );
    line(
        log,
        &mut ms,
        'E',
        "boot",
        "No bootable app partitions in the partition table",
    );
}

/// The partition table as the bootloader reads and logs it; `None` (with its errors) if there is
/// none.
fn read_partitions(flash: &[u8], ms: &mut u32, log: &mut String) -> Option<Vec<Part>> {
    let parts = partitions(flash);
    if parts.is_empty() {
        line(
            log,
            ms,
            'E',
            "flash_parts",
            "partition 0 invalid magic number 0xffff",
        );
        line(log, ms, 'E', "boot", "Failed to verify partition table");
        line(log, ms, 'E', "boot", "load partition table error!");
        return None;
    }
    line(log, ms, 'I', "boot", "Partition Table:");
    line(
        log,
        ms,
        'I',
        "boot",
        "## Label            Usage          Type ST Offset   Length",
    );
    for (i, p) in parts.iter().enumerate() {
        let text = format!(
            "{i:>2} {:<16} {:<14} {:02x} {:02x} {:08x} {:08x}",
            p.label,
            p.usage(),
            p.ty,
            p.subtype,
            p.offset,
            p.size
        );
        line(log, ms, 'I', "boot", &text);
    }
    line(log, ms, 'I', "boot", "End of partition table");
    Some(parts)
}

/// The app's start-up banner, from its `esp_app_desc_t`.
fn app_start(
    chip: Chip,
    (flash, at): (&[u8], usize),
    segments: &[Segment],
    encryption: Option<&Encryption>,
    ms: &mut u32,
    log: &mut String,
) {
    let loaded = format!("Loaded app from partition at offset {at:#x}");
    line(log, ms, 'I', "boot", &loaded);
    if let Some(e) = encryption {
        let left = e.flashes_left;
        let text = format!("flash encryption is enabled ({left} plaintext flashes left)");
        line(log, ms, 'I', "flash_encrypt", &text);
    }
    line(
        log,
        ms,
        'I',
        "boot",
        "Disabling RNG early entropy source...",
    );
    line(log, ms, 'I', "cpu_start", "Unicore app");
    line(log, ms, 'I', "cpu_start", "Pro cpu start user code");
    line(log, ms, 'I', "cpu_start", "cpu freq: 160000000 Hz");
    match encryption {
        Some(e) if e.release => {
            line(
                log,
                ms,
                'I',
                "flash_encrypt",
                "Flash encryption mode is RELEASE",
            );
        }
        Some(_) => {
            let text = "Flash encryption mode is DEVELOPMENT (not secure)";
            line(log, ms, 'W', "flash_encrypt", text);
        }
        None => {}
    }
    app_description(flash, segments, ms, log);
    line(log, ms, 'I', "efuse_init", "Chip rev:         v0.0");
    let heap = "Initializing. RAM available for dynamic allocation:";
    line(log, ms, 'I', "heap_init", heap);
    let detected = format!("detected chip: winbond ({chip})");
    line(log, ms, 'I', "spi_flash", &detected);
    let sleep = "Configure to isolate all GPIO pins in sleep state";
    line(log, ms, 'I', "sleep", sleep);
    line(log, ms, 'I', "main_task", "Started on CPU0");
    line(log, ms, 'I', "main_task", "Calling app_main()");
}

/// The app's `app_init` lines from the `esp_app_desc_t` at the start of its first segment.
fn app_description(flash: &[u8], segments: &[Segment], ms: &mut u32, log: &mut String) {
    let desc = segments
        .first()
        .and_then(|s| flash.get(s.start..s.start + 176.min(s.len)))
        .filter(|d| {
            d.len() >= 144 && u32::from_le_bytes([d[0], d[1], d[2], d[3]]) == APP_DESC_MAGIC
        });
    let Some(d) = desc else { return };
    let text = |r: std::ops::Range<usize>| {
        let bytes = &d[r];
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        String::from_utf8_lossy(&bytes[..end]).into_owned()
    };
    let lines = [
        "Application information:".to_owned(),
        format!("Project name:     {}", text(48..80)),
        format!("App version:      {}", text(16..48)),
        format!("Compile time:     {} {}", text(96..112), text(80..96)),
        format!("ESP-IDF:          {}", text(112..144)),
    ];
    for l in &lines {
        line(log, ms, 'I', "app_init", l);
    }
}

/// One entry of the partition table.
struct Part {
    label: String,
    ty: u8,
    subtype: u8,
    offset: u32,
    size: u32,
}

impl Part {
    /// The bootloader's "Usage" column.
    fn usage(&self) -> &'static str {
        match (self.ty, self.subtype) {
            (0, 0) => "factory app",
            (0, 0x10..=0x1F) => "OTA app",
            (1, 0) => "OTA data",
            (1, 1) => "RF data",
            (1, 2) => "WiFi data",
            _ => "Unknown data",
        }
    }
}

/// The partition table at `TABLE_OFFSET`, up to its first entry without the magic.
fn partitions(flash: &[u8]) -> Vec<Part> {
    let mut parts = Vec::new();
    let Some(table) = flash.get(TABLE_OFFSET..TABLE_OFFSET + TABLE_SIZE) else {
        return parts;
    };
    for e in table.chunks_exact(32) {
        if e[0..2] != [0xAA, 0x50] {
            break;
        }
        let word = |i: usize| u32::from_le_bytes([e[i], e[i + 1], e[i + 2], e[i + 3]]);
        let end = e[12..28].iter().position(|&b| b == 0).unwrap_or(16);
        parts.push(Part {
            label: String::from_utf8_lossy(&e[12..12 + end]).into_owned(),
            ty: e[2],
            subtype: e[3],
            offset: word(4),
            size: word(8),
        });
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_erased_flash_prints_the_roms_invalid_header() {
        let log = boot_log(Chip::Esp32c3, &vec![0xFF; 0x10000], None);
        assert!(log.starts_with("ESP-ROM:esp32c3"), "{log}");
        assert!(log.contains("invalid header: 0xffffffff\r\n"), "{log}");
        assert!(!log.contains("cpu_start"), "{log}");
    }
}
