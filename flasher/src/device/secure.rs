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

use esp_idf_part::{DataType, Flags, SubType, Type};
use espflash::target::Chip as EspChip;
use firmware::encrypt::{self, Key, Scheme};
use serde::Serialize;

use crate::error::{BurnError, DeviceError};
use crate::plan::{Plan, Region};
use crate::profile::{self, KeySource, Mode, Profile};

use super::efuse::{self, Block0, Fuses, Layout, purpose};
use super::failure::{Failure, describe};
use super::identify::Board;
use super::options::Contact;
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
#[derive(Debug, Clone)]
struct Want {
    purpose: u32,
    /// The 32 bytes burned (the key half reversed for the AES-XTS peripheral, as espefuse does;
    /// a digest as it is).
    data: [u8; 32],
    read_protect: bool,
}

/// Where a wanted key block goes on this board, and whether it is there already.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Slot {
    slot: usize,
    purpose: u32,
    data: [u8; 32],
    read_protect: bool,
    /// Found burned with this purpose.
    present: bool,
}

impl Session<'_> {
    /// Steps 1-3: reads and checks the board's eFuses, keeps and burns the keys. Returns the
    /// plan to write: its regions encrypted where ESP-IDF encrypts them.
    pub(super) fn secure_prepare(
        &mut self,
        board: &Board,
        secure: &Secure,
        plan: &Plan,
        contact: &mut Contact,
    ) -> Result<Plan, Failure> {
        let layout = self.secure_layout(board)?;
        let fuses = self.read_fuses(board.chip)?;
        let (key, kept) = self.board_key(board, secure, contact);
        let wants = wants(&secure.profile, key.as_ref());
        let known = kept || contact.secure_key_burned || key_known(secure);
        let slots = assign(&fuses, &layout, &wants, known).map_err(|r| self.refused(r))?;
        check_system_fuses(&fuses, &layout, &secure.profile).map_err(|r| self.refused(r))?;
        self.keep_key(board, secure, key.as_ref(), &slots)?;
        let mut record = new_record(&secure.profile);
        self.burn_keys(board.chip, &layout, &fuses, &slots, &mut record)?;
        contact.secure_key_burned = true;
        let encrypted = encrypt_plan(plan, &secure.profile, key.as_ref(), &mut record)
            .map_err(|e| self.unfinished(format!("cannot encrypt the plan: {e}")))?;
        contact.secure = Some(record);
        Ok(encrypted)
    }

    /// Step 5: burns the crypt counter, SECURE_BOOT_EN and the release fuses, reads everything
    /// back, and in release mode enables Secure Download Mode last.
    pub(super) fn secure_finish(
        &mut self,
        board: &Board,
        secure: &Secure,
        contact: &mut Contact,
    ) -> Result<(), Failure> {
        let layout = self.secure_layout(board)?;
        let fuses = self.read_fuses(board.chip)?;
        let mut record = contact.secure.take().unwrap_or_default();
        let (enable, protect) = finishing_burns(&fuses, &layout, &secure.profile);
        for burn in [&enable, &protect] {
            self.burn_block0(board.chip, burn, &mut record)?;
        }
        let after = self.read_fuses(board.chip)?;
        for burn in [&enable, &protect] {
            if !burn.done_in(&after) {
                contact.secure = Some(record);
                return Err(self.unfinished(
                    "BLOCK0 does not read back as burned after the final burn: the board is \
                     partly secured; run it again to finish it, or set it aside"
                        .into(),
                ));
            }
        }
        if secure.profile.mode == Mode::Release {
            let mut last = Block0::default();
            last.set("ENABLE_SECURITY_DOWNLOAD", &layout.security_download, 1);
            if !last.done_in(&after) {
                self.burn_block0(board.chip, &last, &mut record)?;
            }
        }
        record.verified = true;
        self.opts.console.say(&summary(&record));
        contact.secure = Some(record);
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

    fn read_fuses(&mut self, chip: EspChip) -> Result<Fuses, Failure> {
        Fuses::read(chip, self.flasher.connection()).map_err(|e| {
            Failure::Connect(DeviceError::Line {
                port: self.port.to_string(),
                doing: "reading the eFuses",
                reason: describe(&e),
            })
        })
    }

    /// The key for this board, and whether it was kept by an earlier run: the one kept for its
    /// MAC, else the one the options carry.
    fn board_key(&self, board: &Board, secure: &Secure, contact: &Contact) -> (Option<Key>, bool) {
        let Some(enc) = &secure.profile.encryption else {
            return (None, false);
        };
        if let (KeySource::PerBoard { keep: Some(vault) }, Some(mac)) =
            (&enc.key, board.report.mac.as_deref())
            && !contact.secure_key_burned
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

    /// Step 3: each missing key block, then the purposes, then the protections.
    fn burn_keys(
        &mut self,
        chip: EspChip,
        layout: &Layout,
        fuses: &Fuses,
        slots: &[Slot],
        record: &mut SecureRecord,
    ) -> Result<(), Failure> {
        let mut purposes = Block0::default();
        let mut protect = Block0::default();
        for s in slots {
            if !s.present {
                efuse::burn_key_block(chip, self.flasher.connection(), s.slot, &s.data)
                    .map_err(|e| self.burn_failed(&format!("BLOCK_KEY{}", s.slot), &e))?;
                purposes.set(
                    format!("KEY_PURPOSE_{}", s.slot),
                    &layout.purposes[s.slot],
                    s.purpose,
                );
            }
            protect.write_protect(
                &format!("KEY_PURPOSE_{}", s.slot),
                efuse::wr_dis_purpose(s.slot),
            );
            protect.write_protect(
                &format!("BLOCK_KEY{}", s.slot),
                efuse::wr_dis_key_block(s.slot),
            );
            if s.read_protect {
                protect.set("RD_DIS", &layout.rd_dis, 1 << s.slot);
            }
            record.key_blocks.push(KeyBlockRecord {
                block: format!("BLOCK_KEY{}", s.slot),
                purpose: purpose::name(s.purpose),
                read_protected: s.read_protect,
                burned_now: !s.present,
            });
        }
        for burn in [&purposes, &protect] {
            if !burn.done_in(fuses) {
                self.burn_block0(chip, burn, record)?;
            }
        }
        Ok(())
    }

    fn burn_block0(
        &mut self,
        chip: EspChip,
        burn: &Block0,
        record: &mut SecureRecord,
    ) -> Result<(), Failure> {
        efuse::burn_block0(chip, self.flasher.connection(), burn)
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
        let existing =
            (0..efuse::KEY_BLOCKS).find(|&s| fuses.get(&layout.purposes[s]) == want.purpose);
        if let Some(slot) = existing {
            check_present(fuses, layout, slot, want, key_may_be_present)?;
            taken[slot] = true;
            out.push(slot_of(slot, want, true));
            continue;
        }
        let xts = want.read_protect;
        let quirk = |s: usize| xts && s == efuse::KEY_BLOCKS - 1;
        let usable = |s: usize| !taken[s] && !quirk(s);
        // A burn of this very key cut short by a power cut is burned again; else the lowest
        // free block.
        let free = (0..efuse::KEY_BLOCKS)
            .find(|&s| usable(s) && partly_burned(fuses, layout, s, want))
            .or_else(|| (0..efuse::KEY_BLOCKS).find(|&s| usable(s) && fuses.key_free(layout, s)));
        let Some(slot) = free else {
            return Err(format!(
                "no free key block for {name}: BLOCK_KEY0..5 hold {} (KEY_PURPOSE_0..5); \
                 this board cannot take the profile",
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
    fuses.get(&layout.purposes[slot]) == purpose::USER
        && !fuses.read_disabled(layout, slot)
        && !fuses.write_disabled(efuse::wr_dis_key_block(slot))
        && !fuses.write_disabled(efuse::wr_dis_purpose(slot))
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
    let name = purpose::name(want.purpose);
    if fuses.read_disabled(layout, slot) {
        if key_may_be_present {
            return Ok(());
        }
        return Err(format!(
            "BLOCK_KEY{slot} already holds a read-protected {name} (KEY_PURPOSE_{slot}) that this \
             station did not keep: a per-board key burned by an earlier run without keep-keys-in \
             cannot be recovered, so the board cannot be finished; set it aside"
        ));
    }
    if fuses.key_bytes(slot) != want.data {
        return Err(format!(
            "BLOCK_KEY{slot} already holds a {name} (KEY_PURPOSE_{slot}) that differs from the \
             profile's: this board was secured with another key or profile; set it aside"
        ));
    }
    Ok(())
}

fn used_blocks(fuses: &Fuses, layout: &Layout) -> String {
    (0..efuse::KEY_BLOCKS)
        .map(|s| {
            if fuses.key_free(layout, s) {
                "free".to_string()
            } else {
                purpose::name(fuses.get(&layout.purposes[s]))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Refuses a board whose security fuses already disagree with the profile: encryption on with
/// no key the profile knows, fuses the profile must burn that are write-protected, Secure Boot
/// on without the profile asking for it.
fn check_system_fuses(fuses: &Fuses, layout: &Layout, profile: &Profile) -> Result<(), String> {
    let crypt = fuses.get(&layout.crypt_cnt);
    match &profile.encryption {
        None if crypt.count_ones() % 2 == 1 => {
            return Err(format!(
                "SPI_BOOT_CRYPT_CNT is {crypt:#x}: flash encryption is on, but the profile has no \
                 [flash-encryption]"
            ));
        }
        Some(_)
            if fuses.write_disabled(efuse::WR_DIS_CRYPT_CNT)
                && crypt.count_ones().is_multiple_of(2) =>
        {
            return Err(format!(
                "SPI_BOOT_CRYPT_CNT is {crypt:#x} and write-protected (WR_DIS[{}]): flash \
                 encryption can never be turned on",
                efuse::WR_DIS_CRYPT_CNT
            ));
        }
        Some(_)
            if fuses.write_disabled(efuse::WR_DIS_RD_DIS)
                && crypt.count_ones().is_multiple_of(2) =>
        {
            return Err(format!(
                "RD_DIS is write-protected (WR_DIS[{}]): a flash encryption key burned now could                  not be read-protected",
                efuse::WR_DIS_RD_DIS
            ));
        }
        _ => {}
    }
    let sb_on = fuses.get(&layout.secure_boot_en) == 1;
    match &profile.secure_boot {
        None if sb_on => Err(
            "SECURE_BOOT_EN is set, but the profile has no [secure-boot]: add the board's \
             Secure Boot keys to the profile"
                .into(),
        ),
        Some(_) if !sb_on && fuses.write_disabled(efuse::WR_DIS_SECURE_BOOT_EN) => Err(format!(
            "SECURE_BOOT_EN is write-protected (WR_DIS[{}]): Secure Boot can never be turned on",
            efuse::WR_DIS_SECURE_BOOT_EN
        )),
        Some(sb) => {
            for i in 0..sb.digests.len() {
                if fuses.get(&layout.revoke[i]) == 1 {
                    return Err(format!(
                        "SECURE_BOOT_KEY_REVOKE{i} is set: digest slot {i} is revoked, so the \
                         profile's key {} cannot be used; list fewer keys",
                        i + 1
                    ));
                }
            }
            Ok(())
        }
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
        let crypt = fuses.get(&layout.crypt_cnt);
        let target = if release { 0b111 } else { crypt | 1 };
        if crypt.count_ones().is_multiple_of(2) || (release && crypt != 0b111) {
            enable.set("SPI_BOOT_CRYPT_CNT", &layout.crypt_cnt, target & !crypt);
        }
        if release {
            for (name, field) in &layout.release_encryption {
                enable.set(*name, field, 1);
            }
            protect.write_protect("SPI_BOOT_CRYPT_CNT", efuse::WR_DIS_CRYPT_CNT);
        }
    }
    if let Some(sb) = &profile.secure_boot {
        enable.set("SECURE_BOOT_EN", &layout.secure_boot_en, 1);
        if release {
            for (name, field) in &layout.release_secure_boot {
                enable.set(*name, field, 1);
            }
            for unused in sb.digests.len()..3 {
                enable.set(
                    format!("SECURE_BOOT_KEY_REVOKE{unused}"),
                    &layout.revoke[unused],
                    1,
                );
                protect.write_protect(
                    &format!("SECURE_BOOT_KEY_REVOKE{unused}"),
                    efuse::wr_dis_revoke(unused),
                );
            }
            protect.write_protect("SECURE_BOOT_EN", efuse::WR_DIS_SECURE_BOOT_EN);
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
pub(super) fn is_encrypted(plan: &Plan, region: &Region) -> bool {
    if matches!(
        region.label,
        "bootloader" | "partition-table" | "otadata" | "app"
    ) {
        return true;
    }
    plan.table
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
        if !is_encrypted(plan, region) {
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
            block0: [0; efuse::BLOCK0_WORDS],
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
            &layout.purposes[0],
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
        b.set("SPI_BOOT_CRYPT_CNT", &layout.crypt_cnt, 1);
        fuses.block0 = b.words;
        let err = check_system_fuses(&fuses, &layout, &profile(Mode::Release, None)).unwrap_err();
        assert!(err.starts_with("SPI_BOOT_CRYPT_CNT"), "{err}");
    }
}
