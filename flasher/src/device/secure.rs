//! Secure production (`--security`): a board's flash encryption key and Secure Boot key
//! digests burned into its eFuses, its regions encrypted on the host, and the crypt counter and
//! the profile's other fuses burned last.
//!
//! The order, each step skipped when the board already has it, so that an attempt after a
//! power cut finishes the board or refuses it with the reason:
//!
//! 1. read BLOCK0 and the key blocks; refuse, before anything is burned, a board whose key
//!    blocks, purposes or security fuses disagree with the profile;
//! 2. keep a per-board key where the profile says (before it is burned);
//! 3. burn each key block, then the purposes, then the key blocks' write and read protection
//!    (espefuse's order: data, BLOCK0, then WR_DIS/RD_DIS);
//! 4. (the caller) write every region, encrypted where ESP-IDF encrypts it, and check each by
//!    the MD5 of the encrypted bytes;
//! 5. burn the crypt counter, SECURE_BOOT_EN and the release-mode fuses, then their write
//!    protection, read everything back, and in release mode burn ENABLE_SECURITY_DOWNLOAD last.

use std::sync::Arc;

use esp_idf_part::{DataType, Flags, PartitionTable, SubType, Type};
use espflash::target::Chip as EspChip;
use firmware::encrypt::{self, Key, Scheme};
use serde::Serialize;

use crate::error::{BurnError, DeviceError};
use crate::plan::{Plan, Region};
use crate::profile::{self, KeySource, Mode, Profile};

use super::efuse::{self, Block0, Family, Fuses, Layout, purpose};
use super::failure::{Failure, describe};
use super::identify::Board;
use super::session::Session;

/// Secure production for one board: the profile, and the board's flash encryption key.
#[derive(Debug, Clone)]
pub struct Secure {
    /// The checked profile.
    pub profile: Arc<Profile>,
    /// The board's key (the batch key, or one generated for this board), when the profile
    /// encrypts.
    pub key: Option<Key>,
}

impl Secure {
    /// The profile, with no board's key yet.
    pub fn new(profile: Profile) -> Secure {
        Secure {
            profile: Arc::new(profile),
            key: None,
        }
    }

    /// Whether each board gets its own key (so its encrypted regions are its own).
    pub fn per_board_key(&self) -> bool {
        matches!(
            self.profile.encryption.as_ref().map(|e| &e.key),
            Some(KeySource::PerBoard { .. })
        )
    }

    /// The same for one board: the batch key, or a new key made for this board.
    pub fn for_board(&self) -> std::io::Result<Secure> {
        let key = match &self.profile.encryption {
            None => None,
            Some(e) => Some(match &e.key {
                KeySource::Batch(key) => key.clone(),
                KeySource::PerBoard { .. } => profile::generate_key(e.scheme)?,
            }),
        };
        Ok(Secure {
            profile: self.profile.clone(),
            key,
        })
    }
}

/// What secure production burned on a board, for its record: never a key.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SecureRecord {
    /// `release` or `development`.
    pub mode: String,
    /// The flash encryption scheme, when on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flash_encryption: Option<String>,
    /// Where the flash encryption key came from (`per-board`, `per-board, kept`, `batch`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_source: Option<String>,
    /// The key blocks used: block, purpose, protection.
    pub key_blocks: Vec<KeyBlockRecord>,
    /// The Secure Boot V2 public key digests burned (SHA-256 of each public key, hex).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secure_boot_key_digests: Vec<String>,
    /// The BLOCK0 fields burned, in order, with their values.
    pub fuses: Vec<FuseRecord>,
    /// The encrypted regions: offset and MD5 of the encrypted bytes written.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub encrypted_regions: Vec<EncryptedRegion>,
    /// Whether everything read back as burned.
    pub verified: bool,
}

/// One key block as used.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct KeyBlockRecord {
    /// `BLOCK_KEY0`..`BLOCK_KEY5`.
    pub block: String,
    /// The purpose (`XTS_AES_128_KEY`, `SECURE_BOOT_DIGEST0`).
    pub purpose: String,
    /// Whether the block is read-protected.
    pub read_protected: bool,
    /// Whether it was burned by this run (false: found burned, from an earlier attempt).
    pub burned_now: bool,
}

/// A BLOCK0 field burned.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FuseRecord {
    /// The field (`SPI_BOOT_CRYPT_CNT`, `WR_DIS[4] (SPI_BOOT_CRYPT_CNT)`).
    pub name: String,
    /// The value burned.
    pub value: u32,
}

/// An encrypted region as written.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EncryptedRegion {
    /// Flash offset.
    pub offset: u32,
    /// The region's name.
    pub label: String,
    /// MD5 of the encrypted bytes, hex.
    pub md5: String,
}

/// A key block the profile needs.
#[derive(Clone)]
struct Want {
    purpose: u32,
    /// The 32 bytes burned (the key half reversed for the AES-XTS peripheral, as espefuse does;
    /// a digest as it is).
    data: [u8; 32],
    read_protect: bool,
}

/// Where a wanted key block goes on this board, and whether it is there already.
#[derive(Clone, PartialEq, Eq)]
struct Slot {
    slot: usize,
    purpose: u32,
    data: [u8; 32],
    read_protect: bool,
    /// Found burned with this purpose.
    present: bool,
}

/// Key bytes are never printed, and wiped when dropped.
macro_rules! key_data_guard {
    ($t:ty, $name:literal) => {
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{} (purpose {}, 32 bytes)", $name, self.purpose)
            }
        }

        impl Drop for $t {
            fn drop(&mut self) {
                for b in self.data.iter_mut() {
                    // SAFETY: `b` is a valid, aligned, exclusive reference into `data`.
                    unsafe { std::ptr::write_volatile(b, 0) };
                }
            }
        }
    };
}

key_data_guard!(Want, "Want");
key_data_guard!(Slot, "Slot");

/// What secure production did to one board so far, kept across its attempts.
#[derive(Debug, Clone, Default)]
pub struct SecureProgress {
    /// What was burned so far (never a key).
    pub record: Option<SecureRecord>,
    /// The flash encryption key an attempt started burning into this board: later attempts
    /// use it (and find it read-protected, and go on). Never recorded.
    pub key: Option<firmware::encrypt::Key>,
}

impl Session<'_> {
    /// Steps 1-3: reads and checks the board's eFuses, keeps and burns the keys. Returns the
    /// plan to write: its regions encrypted where ESP-IDF encrypts them.
    pub(super) fn secure_prepare(
        &mut self,
        board: &Board,
        secure: &Secure,
        plan: &Plan,
        progress: &mut SecureProgress,
    ) -> Result<Plan, Failure> {
        let layout = self.secure_layout(board)?;
        let fuses = self.read_fuses(board.chip, &layout)?;
        check_board(board, &fuses, &layout, &secure.profile).map_err(|r| self.refused(r))?;
        // The key of an earlier attempt on this board, else the kept or the given one.
        let (key, kept) = match &progress.key {
            Some(key) => (Some(key.clone()), true),
            None => self.board_key(board, secure),
        };
        let wants = wants(&secure.profile, key.as_ref());
        let known = kept || key_known(secure);
        let slots = assign(&fuses, &layout, &wants, known).map_err(|r| self.refused(r))?;
        check_system_fuses(&fuses, &layout, &secure.profile).map_err(|r| self.refused(r))?;
        self.keep_key(board, secure, key.as_ref(), &slots)?;
        // From here on this key may be on the board: later attempts use it.
        progress.key = key.clone();
        let record = progress.record.insert(new_record(&secure.profile));
        let steps = KeyBurns {
            layout: &layout,
            fuses: &fuses,
            slots: &slots,
            profile: &secure.profile,
        };
        self.burn_keys(board.chip, &steps, record)?;
        encrypt_plan(plan, &secure.profile, key.as_ref(), record)
            .map_err(|e| self.unfinished(format!("cannot encrypt the plan: {e}")))
    }

    /// Step 5: burns the crypt counter, SECURE_BOOT_EN and the release fuses, reads everything
    /// back, and in release mode enables Secure Download Mode last.
    pub(super) fn secure_finish(
        &mut self,
        board: &Board,
        secure: &Secure,
        progress: &mut SecureProgress,
    ) -> Result<(), Failure> {
        let layout = self.secure_layout(board)?;
        let fuses = self.read_fuses(board.chip, &layout)?;
        let mut record = progress.record.take().unwrap_or_default();
        let (enable, protect) = finishing_burns(&fuses, &layout, &secure.profile);
        for burn in [&enable, &protect] {
            self.burn_block0(board.chip, &layout, burn, &mut record)?;
        }
        let after = self.read_fuses(board.chip, &layout)?;
        for burn in [&enable, &protect] {
            if !burn.done_in(&after) {
                progress.record = Some(record);
                return Err(self.unfinished(
                    "BLOCK0 does not read back as burned after the final burn: the board is \
                     partly secured; run it again to finish it, or set it aside"
                        .into(),
                ));
            }
        }
        if let (Mode::Release, Some(field)) = (secure.profile.mode, &layout.security_download) {
            let mut last = Block0::default();
            last.set("ENABLE_SECURITY_DOWNLOAD", field, 1);
            if !last.done_in(&after) {
                self.burn_block0(board.chip, &layout, &last, &mut record)?;
            }
        }
        record.verified = true;
        self.opts.console.say(&summary(&record));
        progress.record = Some(record);
        Ok(())
    }

    /// The chip's eFuse layout; a board in Secure Download Mode, whose eFuses cannot be read,
    /// is refused.
    fn secure_layout(&self, board: &Board) -> Result<Layout, Failure> {
        if self.flasher.secure_download_mode() {
            return Err(self.refused(
                "the board is in Secure Download Mode, so its eFuses cannot be read and nothing \
                 can be checked before burning: secure production needs a board whose download \
                 mode is not restricted"
                    .into(),
            ));
        }
        efuse::layout(board.chip).ok_or_else(|| {
            self.refused(format!(
                "the flasher does not burn the eFuses of the {}",
                board.chip
            ))
        })
    }

    fn read_fuses(&mut self, chip: EspChip, layout: &Layout) -> Result<Fuses, Failure> {
        Fuses::read(chip, layout, self.flasher.connection()).map_err(|e| {
            Failure::Connect(DeviceError::Line {
                port: self.port.to_string(),
                doing: "reading the eFuses",
                reason: describe(&e),
            })
        })
    }

    /// The key for this board, and whether it was kept by an earlier run: the one kept for its
    /// MAC, else the one the options carry.
    fn board_key(&self, board: &Board, secure: &Secure) -> (Option<Key>, bool) {
        let Some(enc) = &secure.profile.encryption else {
            return (None, false);
        };
        if let (KeySource::PerBoard { keep: Some(vault) }, Some(mac)) =
            (&enc.key, board.report.mac.as_deref())
            && let Some(kept) = vault.load(mac, enc.scheme)
        {
            return (Some(kept), true);
        }
        (secure.key.clone(), false)
    }

    /// Keeps a per-board key where the profile says, before it is burned.
    fn keep_key(
        &self,
        board: &Board,
        secure: &Secure,
        key: Option<&Key>,
        slots: &[Slot],
    ) -> Result<(), Failure> {
        let (Some(enc), Some(key)) = (&secure.profile.encryption, key) else {
            return Ok(());
        };
        let KeySource::PerBoard { keep: Some(vault) } = &enc.key else {
            return Ok(());
        };
        if slots.iter().all(|s| s.present) {
            return Ok(());
        }
        let mac = board.report.mac.as_deref().ok_or_else(|| {
            self.refused("the board's MAC cannot be read, so its key cannot be kept".into())
        })?;
        vault.keep(mac, key).map_err(|e| {
            self.refused(format!(
                "cannot keep the board's key in keep-keys-in ({e}); nothing was burned"
            ))
        })
    }

    /// Step 3: each missing key block, then the purposes (on the ESP32, FLASH_CRYPT_CONFIG),
    /// then the protections.
    fn burn_keys(
        &mut self,
        chip: EspChip,
        steps: &KeyBurns,
        record: &mut SecureRecord,
    ) -> Result<(), Failure> {
        let layout = steps.layout;
        let new: Vec<&Slot> = steps.slots.iter().filter(|s| !s.present).collect();
        for s in &new {
            efuse::burn_key_block(chip, layout, self.flasher.connection(), s.slot, &s.data)
                .map_err(|e| self.burn_failed(&layout.block_name(s.slot), &e))?;
        }
        // Each new block is read back before anything protects it.
        if !new.is_empty() {
            let read = self.read_fuses(chip, layout)?;
            if let Some(s) = new.iter().find(|s| read.key_bytes(s.slot) != s.data) {
                return Err(self.unfinished(format!(
                    "{} does not read back as burned (nothing protects it yet): set the board \
                     aside",
                    layout.block_name(s.slot)
                )));
            }
        }
        for s in steps.slots {
            record.key_blocks.push(KeyBlockRecord {
                block: layout.block_name(s.slot),
                purpose: slot_purpose_name(layout, s),
                read_protected: s.read_protect,
                burned_now: !s.present,
            });
        }
        let (purposes, protect) = steps.block0();
        for burn in [&purposes, &protect] {
            if !burn.done_in(steps.fuses) {
                self.burn_block0(chip, layout, burn, record)?;
            }
        }
        let read = self.read_fuses(chip, layout)?;
        if !purposes.done_in(&read) || !protect.done_in(&read) {
            return Err(self.unfinished(
                "the key purposes and protections do not read back as burned: set the board aside"
                    .into(),
            ));
        }
        Ok(())
    }

    fn burn_block0(
        &mut self,
        chip: EspChip,
        layout: &Layout,
        burn: &Block0,
        record: &mut SecureRecord,
    ) -> Result<(), Failure> {
        efuse::burn_block0(chip, layout, self.flasher.connection(), burn)
            .map_err(|e| self.burn_failed("BLOCK0", &e))?;
        record
            .fuses
            .extend(burn.fields.iter().map(|(name, value)| FuseRecord {
                name: name.clone(),
                value: *value,
            }));
        Ok(())
    }

    fn refused(&self, reason: String) -> Failure {
        Failure::Fatal(DeviceError::Burn(BurnError::Refused {
            port: self.port.to_string(),
            reason,
        }))
    }

    fn unfinished(&self, reason: String) -> Failure {
        Failure::Fatal(DeviceError::Burn(BurnError::Unfinished {
            port: self.port.to_string(),
            reason,
        }))
    }

    /// A burn that failed: another attempt reads the eFuses again and takes up from there.
    fn burn_failed(&self, what: &str, e: &espflash::Error) -> Failure {
        Failure::Connect(DeviceError::Burn(BurnError::Unfinished {
            port: self.port.to_string(),
            reason: format!(
                "burning {what} failed ({}); the next attempt reads the eFuses again and \
                 finishes the board, or says why it cannot",
                describe(e)
            ),
        }))
    }
}

/// What step 3 burns on a board.
struct KeyBurns<'a> {
    layout: &'a Layout,
    fuses: &'a Fuses,
    slots: &'a [Slot],
    profile: &'a Profile,
}

impl KeyBurns<'_> {
    /// The two BLOCK0 burns of step 3: the purposes of new key blocks (on the ESP32,
    /// FLASH_CRYPT_CONFIG), then the write protection of every key block and purpose and the
    /// read protection of the keys.
    fn block0(&self) -> (Block0, Block0) {
        let layout = self.layout;
        let mut purposes = Block0::default();
        let mut protect = Block0::default();
        for s in self.slots {
            if let Some(fields) = &layout.purposes {
                if !s.present {
                    purposes.set(
                        format!("KEY_PURPOSE_{}", s.slot),
                        &fields[s.slot],
                        s.purpose,
                    );
                }
                let name = format!("KEY_PURPOSE_{}", s.slot);
                protect.write_protect(&name, efuse::wr_dis_purpose(s.slot));
            }
            let block = layout.block_name(s.slot);
            protect.write_protect(&block, layout.wr_dis_key_block(s.slot));
            if s.read_protect {
                protect.set("RD_DIS", &layout.rd_dis, 1 << s.slot);
            }
        }
        if let (Some(field), Some(enc)) = (&layout.flash_crypt_config, &self.profile.encryption)
            && let Scheme::Esp32Aes { flash_crypt_config } = enc.scheme
        {
            purposes.set("FLASH_CRYPT_CONFIG", field, u32::from(flash_crypt_config));
        }
        (purposes, protect)
    }
}

/// The name a key slot's use has in espefuse: the purpose, or on the ESP32 the block's alias.
fn slot_purpose_name(layout: &Layout, slot: &Slot) -> String {
    match (layout.family, slot.read_protect) {
        (Family::Purposes, _) => purpose::name(slot.purpose),
        (Family::Esp32, true) => "flash_encryption".into(),
        (Family::Esp32, false) => "secure_boot_v2".into(),
    }
}

/// Refuses a board the profile cannot be applied to whatever its key blocks: Secure Boot V2 on
/// an ESP32 before v3.0, an ESP32 whose key blocks use the 3/4 coding scheme.
fn check_board(
    board: &Board,
    fuses: &Fuses,
    layout: &Layout,
    profile: &Profile,
) -> Result<(), String> {
    if layout.family != Family::Esp32 {
        return Ok(());
    }
    if let (Some(_), Some(rev)) = (&profile.secure_boot, board.revision)
        && rev.major < 3
    {
        return Err(format!(
            "Secure Boot V2 needs an ESP32 of revision v3.0 or later, this board is v{}.{}: \
             use v3 boards for this profile, or a profile without [secure-boot]",
            rev.major, rev.minor
        ));
    }
    if let Some(field) = &layout.coding_scheme
        && fuses.get(field) & 1 == 1
    {
        return Err(
            "CODING_SCHEME is 3/4: its 192-bit key blocks hold no 256-bit key or digest; \
             secure this board with espefuse"
                .into(),
        );
    }
    Ok(())
}

/// Whether the key the options carry may already be on the board (a batch key): a key block
/// found burned with its purpose is then taken to hold it.
fn key_known(secure: &Secure) -> bool {
    matches!(
        secure.profile.encryption.as_ref().map(|e| &e.key),
        Some(KeySource::Batch(_))
    )
}

fn new_record(profile: &Profile) -> SecureRecord {
    SecureRecord {
        mode: match profile.mode {
            Mode::Release => "release".into(),
            Mode::Development => "development".into(),
        },
        flash_encryption: profile.encryption.as_ref().map(|e| e.scheme.name().into()),
        key_source: profile.encryption.as_ref().map(|e| {
            match &e.key {
                KeySource::Batch(_) => "batch",
                KeySource::PerBoard { keep: Some(_) } => "per-board, kept",
                KeySource::PerBoard { keep: None } => "per-board",
            }
            .into()
        }),
        secure_boot_key_digests: profile
            .secure_boot
            .iter()
            .flat_map(|s| &s.digests)
            .map(|d| firmware::manifest::hex(&d.digest))
            .collect(),
        ..SecureRecord::default()
    }
}

/// The key blocks the profile needs, in burn order: the flash encryption key (one block, or
/// two for XTS-AES-256), then the Secure Boot digests.
fn wants(profile: &Profile, key: Option<&Key>) -> Vec<Want> {
    let mut out = Vec::new();
    if let (Some(enc), Some(key)) = (&profile.encryption, key) {
        let halves: Vec<(u32, &[u8])> = match enc.scheme {
            Scheme::XtsAes256 => vec![
                (purpose::XTS_AES_256_KEY_1, &key.bytes()[..32]),
                (purpose::XTS_AES_256_KEY_2, &key.bytes()[32..]),
            ],
            _ => vec![(purpose::XTS_AES_128_KEY, key.bytes())],
        };
        for (p, half) in halves {
            let mut data = [0u8; 32];
            data.copy_from_slice(half);
            data.reverse();
            out.push(Want {
                purpose: p,
                data,
                read_protect: true,
            });
        }
    }
    if let Some(sb) = &profile.secure_boot {
        for (i, d) in sb.digests.iter().enumerate() {
            out.push(Want {
                purpose: purpose::SECURE_BOOT_DIGEST0 + i as u32,
                data: d.digest,
                read_protect: false,
            });
        }
    }
    out
}

/// Places each wanted key block: where the board has it already, else in the lowest free
/// block (never BLOCK_KEY5 for an XTS key: the hardware quirk espefuse refuses). Refuses a
/// block holding the purpose with other data, a read-protected key this station cannot know,
/// and a board without enough free blocks.
fn assign(
    fuses: &Fuses,
    layout: &Layout,
    wants: &[Want],
    key_may_be_present: bool,
) -> Result<Vec<Slot>, String> {
    let mut taken = [false; efuse::KEY_BLOCKS];
    let mut out = Vec::new();
    for want in wants {
        let name = purpose::name(want.purpose);
        let existing = match layout.family {
            Family::Purposes => {
                (0..layout.slots()).find(|&s| fuses.purpose(layout, s) == want.purpose)
            }
            // The ESP32's blocks are fixed: BLOCK1 the key, BLOCK2 the digest; a block holding
            // data counts as burned with that use.
            Family::Esp32 => Some(usize::from(!want.read_protect))
                .filter(|&s| !fuses.key_free(layout, s) && !partly_burned(fuses, layout, s, want)),
        };
        if let Some(slot) = existing {
            check_present(fuses, layout, slot, want, key_may_be_present)?;
            taken[slot] = true;
            out.push(slot_of(slot, want, true));
            continue;
        }
        let xts = want.read_protect;
        let quirk =
            |s: usize| xts && layout.family == Family::Purposes && s == efuse::KEY_BLOCKS - 1;
        let fixed = |s: usize| layout.family == Family::Purposes || s == usize::from(!xts);
        let usable = |s: usize| !taken[s] && !quirk(s) && fixed(s);
        // A burn of this very key cut short by a power cut is burned again; else the lowest
        // free block.
        let free = (0..layout.slots())
            .find(|&s| usable(s) && partly_burned(fuses, layout, s, want))
            .or_else(|| (0..layout.slots()).find(|&s| usable(s) && fuses.key_free(layout, s)));
        let Some(slot) = free else {
            return Err(format!(
                "no free key block for {name}: the key blocks hold {}; this board cannot take \
                 the profile",
                used_blocks(fuses, layout)
            ));
        };
        taken[slot] = true;
        out.push(slot_of(slot, want, false));
    }
    Ok(out)
}

/// Whether key block `slot` holds part of `want`'s bits and nothing else, with no purpose or
/// protection yet: a burn of it that the power cut short.
fn partly_burned(fuses: &Fuses, layout: &Layout, slot: usize, want: &Want) -> bool {
    let bytes = fuses.key_bytes(slot);
    fuses.unclaimed(layout, slot)
        && bytes.iter().any(|&b| b != 0)
        && bytes
            .iter()
            .zip(want.data)
            .all(|(&have, want)| have & !want == 0)
}

fn slot_of(slot: usize, want: &Want, present: bool) -> Slot {
    Slot {
        slot,
        purpose: want.purpose,
        data: want.data,
        read_protect: want.read_protect,
        present,
    }
}

/// A key block found with the wanted purpose: the same data when it can be read, else a key
/// this station may have burned.
fn check_present(
    fuses: &Fuses,
    layout: &Layout,
    slot: usize,
    want: &Want,
    key_may_be_present: bool,
) -> Result<(), String> {
    let block = layout.block_name(slot);
    let name = match layout.family {
        Family::Purposes => format!("{} (KEY_PURPOSE_{slot})", purpose::name(want.purpose)),
        Family::Esp32 if want.read_protect => "flash encryption key".into(),
        Family::Esp32 => "Secure Boot V2 digest".into(),
    };
    if fuses.read_disabled(layout, slot) {
        if key_may_be_present {
            return Ok(());
        }
        return Err(format!(
            "{block} already holds a read-protected {name} that this station did not keep: a \
             per-board key burned by an earlier run without keep-keys-in cannot be recovered, so \
             the board cannot be finished; set it aside"
        ));
    }
    if fuses.key_bytes(slot) != want.data {
        return Err(format!(
            "{block} already holds a {name} that differs from the profile's (or is \
             write-protected): this board was secured with another key or profile; set it aside"
        ));
    }
    Ok(())
}

fn used_blocks(fuses: &Fuses, layout: &Layout) -> String {
    (0..layout.slots())
        .map(|s| {
            if fuses.key_free(layout, s) {
                format!("{}: free", layout.block_name(s))
            } else {
                format!(
                    "{}: {}",
                    layout.block_name(s),
                    purpose::name(fuses.purpose(layout, s))
                )
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Refuses a board whose security fuses already disagree with the profile: encryption on with
/// no key the profile knows, fuses the profile must burn that are write-protected, Secure Boot
/// on without the profile asking for it.
fn check_system_fuses(fuses: &Fuses, layout: &Layout, profile: &Profile) -> Result<(), String> {
    let (crypt_name, crypt_field) = &layout.crypt_cnt;
    let crypt = fuses.get(crypt_field);
    let on = !crypt.count_ones().is_multiple_of(2);
    match &profile.encryption {
        None if on => {
            return Err(format!(
                "{crypt_name} is {crypt:#x}: flash encryption is on, but the profile has no \
                 [flash-encryption]"
            ));
        }
        Some(_) if !on && fuses.write_disabled(layout.wr_dis_crypt_cnt) => {
            return Err(format!(
                "{crypt_name} is {crypt:#x} and write-protected (WR_DIS[{}]): flash encryption \
                 can never be turned on",
                layout.wr_dis_crypt_cnt
            ));
        }
        Some(_) if !on && fuses.write_disabled(efuse::WR_DIS_RD_DIS) => {
            return Err(format!(
                "RD_DIS is write-protected (WR_DIS[{}]): a flash encryption key burned now could \
                 not be read-protected",
                efuse::WR_DIS_RD_DIS
            ));
        }
        _ => {}
    }
    let (sb_name, sb_field) = &layout.secure_boot_en;
    let sb_on = fuses.get(sb_field) == 1;
    match &profile.secure_boot {
        None if sb_on => Err(format!(
            "{sb_name} is set (Secure Boot is on), but the profile has no [secure-boot]: add the \
             board's Secure Boot keys to the profile"
        )),
        Some(_) if !sb_on && fuses.write_disabled(layout.wr_dis_secure_boot_en) => Err(format!(
            "{sb_name} is write-protected (WR_DIS[{}]): Secure Boot can never be turned on",
            layout.wr_dis_secure_boot_en
        )),
        Some(sb) => match &layout.revoke {
            Some(revoke) => (0..sb.digests.len())
                .find(|&i| fuses.get(&revoke[i]) == 1)
                .map_or(Ok(()), |i| {
                    Err(format!(
                        "SECURE_BOOT_KEY_REVOKE{i} is set: digest slot {i} is revoked, so the \
                         profile's key {} cannot be used; list fewer keys",
                        i + 1
                    ))
                }),
            None => Ok(()),
        },
        None => Ok(()),
    }
}

/// Step 5's two BLOCK0 burns: what turns the features on (crypt counter, SECURE_BOOT_EN,
/// release fuses), then what write-protects them.
fn finishing_burns(fuses: &Fuses, layout: &Layout, profile: &Profile) -> (Block0, Block0) {
    let mut enable = Block0::default();
    let mut protect = Block0::default();
    let release = profile.mode == Mode::Release;
    if profile.encryption.is_some() {
        let (name, field) = &layout.crypt_cnt;
        let crypt = fuses.get(field);
        let full = (1u32 << field.bit_count) - 1;
        let target = if release { full } else { crypt | 1 };
        if crypt.count_ones().is_multiple_of(2) || (release && crypt != full) {
            enable.set(*name, field, target & !crypt);
        }
        if release {
            for (name, field) in &layout.release_encryption {
                enable.set(*name, field, 1);
            }
            protect.write_protect(name, layout.wr_dis_crypt_cnt);
        }
    }
    if let Some(sb) = &profile.secure_boot {
        let (name, field) = &layout.secure_boot_en;
        enable.set(*name, field, 1);
        if release {
            for (name, field) in &layout.release_secure_boot {
                enable.set(*name, field, 1);
            }
            for unused in sb.digests.len()..layout.revoke.as_ref().map_or(0, |r| r.len()) {
                let revoke = layout.revoke.as_ref().expect("counted above");
                let what = format!("SECURE_BOOT_KEY_REVOKE{unused}");
                enable.set(what.clone(), &revoke[unused], 1);
                protect.write_protect(&what, efuse::wr_dis_revoke(unused));
            }
            protect.write_protect(name, layout.wr_dis_secure_boot_en);
        }
    }
    if release {
        protect.write_protect("RD_DIS", efuse::WR_DIS_RD_DIS);
    }
    (enable, protect)
}

/// Whether ESP-IDF encrypts `region` on a board with flash encryption: the bootloader, the
/// partition table, OTA data, app partitions, NVS key partitions and partitions marked
/// `encrypted`; everything else (NVS data among them) stays plain.
pub(super) fn is_encrypted(table: &PartitionTable, region: &Region) -> bool {
    if matches!(
        region.label,
        "bootloader" | "partition-table" | "otadata" | "app"
    ) {
        return true;
    }
    table
        .partitions()
        .iter()
        .find(|p| {
            u64::from(region.offset) >= u64::from(p.offset())
                && region.end() <= u64::from(p.offset()) + u64::from(p.size())
        })
        .is_some_and(|p| {
            p.flags().contains(Flags::ENCRYPTED)
                || p.ty() == Type::App
                || matches!(
                    p.subtype(),
                    SubType::Data(DataType::Ota) | SubType::Data(DataType::NvsKeys)
                )
        })
}

/// `plan` with the regions ESP-IDF encrypts encrypted under `key`, recorded in `record`.
fn encrypt_plan(
    plan: &Plan,
    profile: &Profile,
    key: Option<&Key>,
    record: &mut SecureRecord,
) -> Result<Plan, encrypt::EncryptError> {
    let (Some(enc), Some(key)) = (&profile.encryption, key) else {
        return Ok(plan.clone());
    };
    let mut out = plan.clone();
    for region in out.regions.iter_mut() {
        if !is_encrypted(&plan.table, region) {
            continue;
        }
        region.bytes = encrypt::encrypt(key, enc.scheme, region.offset, &region.bytes)?;
        record.encrypted_regions.push(EncryptedRegion {
            offset: region.offset,
            label: region.label.into(),
            md5: region.md5_hex(),
        });
    }
    Ok(out)
}

/// One line on what was burned.
fn summary(record: &SecureRecord) -> String {
    let blocks: Vec<String> = record
        .key_blocks
        .iter()
        .map(|k| format!("{} {}", k.block, k.purpose))
        .collect();
    format!(
        "secured ({}): {}; {} regions encrypted; {} BLOCK0 fields burned, all read back",
        record.mode,
        blocks.join(", "),
        record.encrypted_regions.len(),
        record.fuses.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmware::chip::Chip;

    fn profile(mode: Mode, scheme: Option<Scheme>) -> Profile {
        Profile {
            chip: Chip::Esp32c3,
            mode,
            encryption: scheme.map(|scheme| profile::Encryption {
                scheme,
                key: KeySource::PerBoard { keep: None },
            }),
            secure_boot: None,
        }
    }

    fn blank() -> Fuses {
        Fuses {
            block0: [0; efuse::BLOCK0_MAX],
            keys: [[0; 8]; efuse::KEY_BLOCKS],
        }
    }

    fn key() -> Key {
        Key::new((0..32).collect(), Scheme::XtsAes128).unwrap()
    }

    #[test]
    fn a_blank_board_takes_the_first_block_and_a_burned_one_is_found_again() {
        let layout = efuse::layout(EspChip::Esp32c3).unwrap();
        let p = profile(Mode::Development, Some(Scheme::XtsAes128));
        let wants = wants(&p, Some(&key()));
        assert_eq!(wants[0].data[0], 31, "reversed as espefuse burns it");
        let slots = assign(&blank(), &layout, &wants, false).unwrap();
        assert_eq!((slots[0].slot, slots[0].present), (0, false));

        let mut burned = blank();
        let mut b = Block0::default();
        b.set(
            "KEY_PURPOSE_0",
            &layout.purposes.as_ref().unwrap()[0],
            purpose::XTS_AES_128_KEY,
        );
        b.set("RD_DIS", &layout.rd_dis, 1);
        burned.block0 = b.words;
        assert!(assign(&burned, &layout, &wants, true).unwrap()[0].present);
        let err = assign(&burned, &layout, &wants, false).unwrap_err();
        assert!(
            err.contains("BLOCK_KEY0") && err.contains("cannot be recovered"),
            "{err}"
        );
    }

    #[test]
    fn used_blocks_are_skipped_and_a_full_board_is_refused() {
        let layout = efuse::layout(EspChip::Esp32c3).unwrap();
        let p = profile(Mode::Development, Some(Scheme::XtsAes128));
        let wants = wants(&p, Some(&key()));
        let mut fuses = blank();
        fuses.keys[0][0] = 0x8000_0000;
        assert_eq!(assign(&fuses, &layout, &wants, false).unwrap()[0].slot, 1);
        for s in 0..5 {
            fuses.keys[s][0] = 0x8000_0000;
        }
        let err = assign(&fuses, &layout, &wants, false).unwrap_err();
        assert!(err.contains("no free key block"), "{err}");
    }

    #[test]
    fn a_key_half_burned_by_a_power_cut_is_burned_again_where_it_is() {
        let layout = efuse::layout(EspChip::Esp32c3).unwrap();
        let p = profile(Mode::Development, Some(Scheme::XtsAes128));
        let wants = wants(&p, Some(&key()));
        let mut fuses = blank();
        fuses.keys[0][0] = 0x8000_0000; // someone else's data
        let half = &wants[0].data[..16];
        for (w, chunk) in fuses.keys[2].iter_mut().zip(half.chunks(4)) {
            *w = u32::from_le_bytes(chunk.try_into().unwrap());
        }
        let slots = assign(&fuses, &layout, &wants, false).unwrap();
        assert_eq!((slots[0].slot, slots[0].present), (2, false));
    }

    #[test]
    fn regions_are_encrypted_where_esp_idf_encrypts_them() {
        let table = firmware::partition::parse_csv(
            "nvs,data,nvs,0x9000,0x6000,\n\
             keys,data,nvs_keys,0xf000,0x1000,encrypted\n\
             secret,data,nvs,0x10000,0x4000,encrypted\n\
             factory,app,factory,0x20000,0x100000,\n\
             storage,data,spiffs,0x120000,0x10000,\n",
        )
        .unwrap();
        let region = |offset: u32, label: &'static str| Region {
            offset,
            bytes: vec![0; 64],
            label,
            source: crate::plan::Source::Generated("test".into()),
        };
        assert!(is_encrypted(&table, &region(0x0, "bootloader")));
        assert!(is_encrypted(&table, &region(0x8000, "partition-table")));
        assert!(!is_encrypted(&table, &region(0x9000, "nvs")), "plain NVS");
        assert!(is_encrypted(&table, &region(0xf000, "data")), "NVS keys");
        assert!(
            is_encrypted(&table, &region(0x10000, "nvs")),
            "marked encrypted"
        );
        assert!(
            is_encrypted(&table, &region(0x20000, "model")),
            "in an app partition"
        );
        assert!(
            !is_encrypted(&table, &region(0x120000, "data")),
            "plain data"
        );
    }

    #[test]
    fn release_mode_burns_the_counter_full_then_protects_it() {
        let layout = efuse::layout(EspChip::Esp32c3).unwrap();
        let p = profile(Mode::Release, Some(Scheme::XtsAes128));
        let (enable, protect) = finishing_burns(&blank(), &layout, &p);
        let names: Vec<&str> = enable.fields.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"SPI_BOOT_CRYPT_CNT") && names.contains(&"DIS_PAD_JTAG"));
        assert_eq!(enable.fields[0].1, 0b111);
        assert!(protect.fields.iter().any(|(n, _)| n.contains("WR_DIS[4]")));
        let dev = profile(Mode::Development, Some(Scheme::XtsAes128));
        let (enable, protect) = finishing_burns(&blank(), &layout, &dev);
        assert_eq!(enable.fields, vec![("SPI_BOOT_CRYPT_CNT".to_string(), 1)]);
        assert!(protect.is_empty());
    }

    #[test]
    fn fuses_that_disagree_are_named() {
        let layout = efuse::layout(EspChip::Esp32c3).unwrap();
        let mut fuses = blank();
        let mut b = Block0::default();
        b.set("SPI_BOOT_CRYPT_CNT", &layout.crypt_cnt.1, 1);
        fuses.block0 = b.words;
        let err = check_system_fuses(&fuses, &layout, &profile(Mode::Release, None)).unwrap_err();
        assert!(err.starts_with("SPI_BOOT_CRYPT_CNT"), "{err}");
    }
}
