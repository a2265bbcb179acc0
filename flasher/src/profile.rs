//! The security profile (`--security FILE.toml`): what secure production turns on at the
//! station, parsed and checked once, before any board is touched.
//!
//! ```toml
//! mode = "release"                 # or "development"
//!
//! [flash-encryption]
//! scheme = "xts-aes-128"           # "xts-aes-256" (esp32s2/s3), "aes-256" (esp32)
//! key = "per-board"                # the default: a new key generated for each board
//! # key-file = "batch.key"         # or one key for the whole batch (raw bytes)
//! # keep-keys-in = "keys/"         # where per-board keys are kept (0600), by MAC
//!
//! [secure-boot]
//! public-keys = ["signing1.pub.pem"]   # 1-3 Secure Boot V2 public keys
//! ```
//!
//! Relative paths are taken from the profile's folder. The device layer gets the result (the
//! scheme, a key or how to make one, the key digests, the mode), never a file name.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use firmware::chip::Chip;
use firmware::encrypt::{DEFAULT_FLASH_CRYPT_CONFIG, Key, Scheme};
use firmware::esp_image;
use firmware::secure_boot::{self, KeyDigest};
use serde::Deserialize;

use crate::error::ExitKind;
use crate::plan::Plan;

/// Why a security profile cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The file cannot be read.
    #[error("--security {path}: cannot read it ({source}); pass the profile's path")]
    Read {
        /// The profile.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a profile.
    #[error("--security {path}: {reason}; see docs/user-guide.md, \"Secure production\"")]
    Syntax {
        /// The profile.
        path: PathBuf,
        /// What the TOML parser says, on one line.
        reason: String,
    },
    /// The build cannot be secured as the profile says (an unsigned build for Secure Boot, a
    /// build signed with none of the profile's keys).
    #[error("--security {path}: {reason}")]
    Build {
        /// The profile.
        path: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The profile is valid TOML but cannot be carried out.
    #[error("--security {path}: {reason}")]
    Invalid {
        /// The profile.
        path: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },
}

impl ProfileError {
    /// The kind of failure: a profile that cannot be used is bad input (2), a build it cannot
    /// secure a bad bundle (3).
    pub fn kind(&self) -> ExitKind {
        match self {
            ProfileError::Build { .. } => ExitKind::Bundle,
            _ => ExitKind::Usage,
        }
    }
}

/// Release or development mode, as ESP-IDF's `CONFIG_SECURE_FLASH_ENCRYPTION_MODE_*` and
/// Secure Boot's release fuses mean them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The fuses ESP-IDF's release mode burns: the crypt counter full and write-protected, the
    /// ROM's plaintext download paths and JTAG off (docs/user-guide.md lists them per chip).
    Release,
    /// The crypt counter's first bit only; the board can be reflashed with encrypted data.
    Development,
}

/// Where a board's flash encryption key comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A new random key for each board, kept in memory only unless `keep` says where.
    PerBoard {
        /// Where each board's key is written (by MAC), or `None`.
        keep: Option<KeyVault>,
    },
    /// One key for every board of the batch.
    Batch(Key),
}

/// Flash encryption as the profile asks for it.
#[derive(Debug, Clone)]
pub struct Encryption {
    /// The scheme.
    pub scheme: Scheme,
    /// The key, or how each board gets one.
    pub key: KeySource,
}

/// Secure Boot V2 as the profile asks for it.
#[derive(Debug, Clone)]
pub struct SecureBoot {
    /// The digests of the public keys, in the profile's order (SECURE_BOOT_DIGEST0, 1, 2).
    pub digests: Vec<KeyDigest>,
}

/// A checked security profile.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The chip it was checked for.
    pub chip: Chip,
    /// Release or development mode.
    pub mode: Mode,
    /// Flash encryption, if on.
    pub encryption: Option<Encryption>,
    /// Secure Boot V2, if on.
    pub secure_boot: Option<SecureBoot>,
}

/// The chips whose eFuse controller the flasher programs.
pub const BURN_CHIPS: [Chip; 6] = [
    Chip::Esp32,
    Chip::Esp32s2,
    Chip::Esp32s3,
    Chip::Esp32c3,
    Chip::Esp32c6,
    Chip::Esp32h2,
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawProfile {
    mode: Mode,
    flash_encryption: Option<RawEncryption>,
    secure_boot: Option<RawSecureBoot>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawEncryption {
    scheme: Option<String>,
    key: Option<String>,
    key_file: Option<PathBuf>,
    keep_keys_in: Option<PathBuf>,
    flash_crypt_config: Option<u8>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSecureBoot {
    public_keys: Vec<PathBuf>,
}

impl Profile {
    /// Reads and checks the profile at `path` for boards of `chip`.
    pub fn load(path: &Path, chip: Chip) -> Result<Profile, ProfileError> {
        let text = fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let raw: RawProfile = toml::from_str(&text).map_err(|e| ProfileError::Syntax {
            path: path.to_path_buf(),
            reason: e.message().replace('\n', " "),
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let invalid = |reason: String| ProfileError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        Profile::check(raw, dir, chip).map_err(invalid)
    }

    /// The profile's parts, each checked against `chip`.
    fn check(raw: RawProfile, dir: &Path, chip: Chip) -> Result<Profile, String> {
        if raw.flash_encryption.is_none() && raw.secure_boot.is_none() {
            return Err("it turns nothing on: add [flash-encryption] and/or [secure-boot]".into());
        }
        if !BURN_CHIPS.contains(&chip) {
            return Err(format!(
                "the flasher does not burn the eFuses of the {chip} yet (it does for esp32, \
                 esp32s2, esp32s3, esp32c3, esp32c6 and esp32h2): secure it with espefuse and \
                 espsecure"
            ));
        }
        let encryption = raw
            .flash_encryption
            .map(|e| encryption(e, dir, chip))
            .transpose()?;
        let secure_boot = raw
            .secure_boot
            .map(|s| secure_boot(s, dir, chip))
            .transpose()?;
        Ok(Profile {
            chip,
            mode: raw.mode,
            encryption,
            secure_boot,
        })
    }

    /// Refuses a build the profile cannot secure: with Secure Boot, a bootloader or app without
    /// a Secure Boot V2 signature, or with signatures (RSA or ECDSA) made by none of the profile's keys
    /// (the board could then verify nothing it is given).
    pub fn check_build(&self, path: &Path, plan: &Plan) -> Result<(), ProfileError> {
        let Some(sb) = &self.secure_boot else {
            return Ok(());
        };
        let build = |reason: String| ProfileError::Build {
            path: path.to_path_buf(),
            reason,
        };
        for region in plan
            .regions
            .iter()
            .filter(|r| matches!(r.label, "bootloader" | "app"))
        {
            let signed = esp_image::parse(&region.bytes).is_ok_and(|info| info.signed);
            if !signed {
                return Err(build(format!(
                    "Secure Boot is requested, but the {} ({}) carries no Secure Boot V2 \
                     signature: build with CONFIG_SECURE_BOOT_V2_ENABLED and sign it with one of \
                     the profile's keys",
                    region.label, region.source
                )));
            }
            let keys = esp_image::signing_key_digests(&region.bytes).unwrap_or_default();
            if !keys.is_empty()
                && !keys
                    .iter()
                    .any(|k| sb.digests.iter().any(|d| d.digest == *k))
            {
                return Err(build(format!(
                    "the {} ({}) is signed with none of the profile's public keys, so no board \
                     secured with them would verify it: sign it with one of them or list its key",
                    region.label, region.source
                )));
            }
        }
        Ok(())
    }

    /// How many eFuse key blocks the profile needs on a board.
    pub fn key_blocks(&self) -> usize {
        let enc = self.encryption.as_ref().map_or(0, |e| match e.scheme {
            Scheme::XtsAes256 => 2,
            _ => 1,
        });
        enc + self.secure_boot.as_ref().map_or(0, |s| s.digests.len())
    }
}

/// The `[flash-encryption]` table, checked.
fn encryption(raw: RawEncryption, dir: &Path, chip: Chip) -> Result<Encryption, String> {
    let scheme = match raw.scheme.as_deref() {
        None if chip == Chip::Esp32 => Scheme::Esp32Aes {
            flash_crypt_config: DEFAULT_FLASH_CRYPT_CONFIG,
        },
        None | Some("xts-aes-128") => Scheme::XtsAes128,
        Some("xts-aes-256") => Scheme::XtsAes256,
        Some("aes-256") => Scheme::Esp32Aes {
            flash_crypt_config: raw.flash_crypt_config.unwrap_or(DEFAULT_FLASH_CRYPT_CONFIG),
        },
        Some(other) => {
            return Err(format!(
                "flash-encryption scheme '{other}' is unknown: use xts-aes-128, xts-aes-256 or \
                 aes-256 (esp32)"
            ));
        }
    };
    if !scheme.supported_by(chip) {
        return Err(format!(
            "the {chip} has no {} flash encryption: use {}",
            scheme.name(),
            if chip == Chip::Esp32 {
                "aes-256"
            } else {
                "xts-aes-128"
            }
        ));
    }
    let key = match (raw.key.as_deref(), raw.key_file, raw.keep_keys_in) {
        (Some("per-board") | None, None, keep) => KeySource::PerBoard {
            keep: keep.map(|d| KeyVault::open(&dir.join(d))).transpose()?,
        },
        (None, Some(file), None) => KeySource::Batch(batch_key(&dir.join(file), scheme)?),
        (None, Some(_), Some(_)) => {
            return Err(
                "keep-keys-in keeps per-board keys, but key-file gives one batch key: drop one"
                    .into(),
            );
        }
        (Some(other), _, _) => {
            return Err(format!(
                "flash-encryption key = '{other}': use key = \"per-board\" or key-file = \"FILE\""
            ));
        }
    };
    Ok(Encryption { scheme, key })
}

/// A batch key file: raw bytes, as `espsecure generate-flash-encryption-key` writes them.
fn batch_key(path: &Path, scheme: Scheme) -> Result<Key, String> {
    let bytes = fs::read(path).map_err(|e| format!("key-file {}: {e}", path.display()))?;
    Key::new(bytes, scheme).map_err(|e| {
        format!(
            "key-file {}: {e}; make one with `espsecure generate-flash-encryption-key \
             --keylen {} FILE`",
            path.display(),
            scheme.key_len() * 8
        )
    })
}

/// The `[secure-boot]` table, checked: 1 to the chip's number of keys, each of a kind its ROM
/// verifies, no key twice.
fn secure_boot(raw: RawSecureBoot, dir: &Path, chip: Chip) -> Result<SecureBoot, String> {
    let max = secure_boot::max_keys(chip);
    if raw.public_keys.is_empty() {
        return Err(
            "secure-boot has no public-keys, which would leave no way to verify any build: \
             list 1 to 3 public key files"
                .into(),
        );
    }
    if raw.public_keys.len() > max {
        return Err(format!(
            "secure-boot lists {} public keys, the {chip} holds {max}: list at most {max}",
            raw.public_keys.len()
        ));
    }
    let mut digests: Vec<KeyDigest> = Vec::new();
    for file in &raw.public_keys {
        let path = dir.join(file);
        let pem = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let digest =
            secure_boot::public_key_digest(&pem).map_err(|e| format!("{}: {e}", path.display()))?;
        if !digest.kind.supported_by(chip) {
            return Err(format!(
                "{}: the {chip}'s ROM does not verify {} signatures: use a key it verifies \
                 (docs/user-guide.md)",
                path.display(),
                digest.kind.name()
            ));
        }
        if digests.iter().any(|d| d.digest == digest.digest) {
            return Err(format!(
                "{} is listed twice: list each key once",
                path.display()
            ));
        }
        digests.push(digest);
    }
    Ok(SecureBoot { digests })
}

/// A folder where per-board flash encryption keys are kept, one file per board named by its
/// MAC (`aa-bb-cc-dd-ee-ff.key`), each 0600, written to a temporary file and renamed.
#[derive(Debug, Clone)]
pub struct KeyVault {
    dir: PathBuf,
}

impl KeyVault {
    /// The folder, which must exist and be a directory.
    fn open(dir: &Path) -> Result<KeyVault, String> {
        match fs::metadata(dir) {
            Ok(m) if m.is_dir() => Ok(KeyVault {
                dir: dir.to_path_buf(),
            }),
            Ok(_) => Err(format!("keep-keys-in {}: not a directory", dir.display())),
            Err(e) => Err(format!(
                "keep-keys-in {}: {e}; create it (mode 0700) first",
                dir.display()
            )),
        }
    }

    fn path(&self, mac: &str) -> PathBuf {
        self.dir.join(format!(
            "{}.key",
            mac.replace(':', "-").to_ascii_lowercase()
        ))
    }

    /// Keeps `key` for the board with `mac`, durably, before it is burned.
    pub fn keep(&self, mac: &str, key: &Key) -> std::io::Result<()> {
        let path = self.path(mac);
        let tmp = path.with_extension("key.tmp");
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        file.write_all(key.bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, &path)?;
        if let Ok(dir) = fs::File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// The key kept for the board with `mac`, if there is one.
    pub fn load(&self, mac: &str, scheme: Scheme) -> Option<Key> {
        let bytes = fs::read(self.path(mac)).ok()?;
        Key::new(bytes, scheme).ok()
    }
}

/// A new random key for `scheme`, from the operating system's generator.
pub fn generate_key(scheme: Scheme) -> std::io::Result<Key> {
    use std::io::Read;
    let mut bytes = vec![0u8; scheme.key_len()];
    fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Key::new(bytes, scheme).map_err(|e| std::io::Error::other(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, chip: Chip) -> Result<Profile, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("security.toml");
        fs::write(&path, text).unwrap();
        fs::write(dir.path().join("batch.key"), [7u8; 32]).unwrap();
        fs::write(dir.path().join("short.key"), [7u8; 16]).unwrap();
        fs::create_dir(dir.path().join("keys")).unwrap();
        Profile::load(&path, chip).map_err(|e| e.to_string())
    }

    #[test]
    fn per_board_keys_are_the_default() {
        let p = load("mode = \"release\"\n[flash-encryption]\n", Chip::Esp32c3).unwrap();
        let enc = p.encryption.unwrap();
        assert_eq!(enc.scheme, Scheme::XtsAes128);
        assert!(matches!(enc.key, KeySource::PerBoard { keep: None }));
        assert_eq!(p.mode, Mode::Release);
    }

    #[test]
    fn batch_and_kept_keys_are_read() {
        let p = load(
            "mode = \"development\"\n[flash-encryption]\nkey-file = \"batch.key\"\n",
            Chip::Esp32c6,
        )
        .unwrap();
        assert!(matches!(p.encryption.unwrap().key, KeySource::Batch(_)));
        let p = load(
            "mode = \"release\"\n[flash-encryption]\nkeep-keys-in = \"keys\"\n",
            Chip::Esp32s3,
        )
        .unwrap();
        assert!(matches!(
            p.encryption.unwrap().key,
            KeySource::PerBoard { keep: Some(_) }
        ));
    }

    #[test]
    fn inconsistent_profiles_are_refused_on_one_line() {
        let cases = [
            ("mode = \"release\"\n", Chip::Esp32c3, "turns nothing on"),
            (
                "mode = \"release\"\n[flash-encryption]\nscheme = \"xts-aes-256\"\n",
                Chip::Esp32c3,
                "no xts-aes-256",
            ),
            (
                "mode = \"release\"\n[secure-boot]\npublic-keys = []\n",
                Chip::Esp32c3,
                "no way to verify",
            ),
            (
                "mode = \"release\"\n[flash-encryption]\nkey-file = \"short.key\"\n",
                Chip::Esp32c3,
                "is 32 bytes, this one is 16",
            ),
            (
                "mode = \"release\"\n[flash-encryption]\nkey-file = \"batch.key\"\nkeep-keys-in = \"keys\"\n",
                Chip::Esp32c3,
                "drop one",
            ),
            (
                "mode = \"release\"\n[flash-encryption]\nkeep-keys-in = \"nowhere\"\n",
                Chip::Esp32c3,
                "create it",
            ),
            ("mode = \"fast\"\n", Chip::Esp32c3, "unknown variant"),
            (
                "mode = \"release\"\n[flash-encryption]\nkye = 1\n",
                Chip::Esp32c3,
                "unknown field",
            ),
            (
                "mode = \"release\"\n[flash-encryption]\n",
                Chip::Esp32c2,
                "does not burn the eFuses of the esp32c2",
            ),
        ];
        for (text, chip, expected) in cases {
            let err = load(text, chip).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn kept_keys_are_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let vault = KeyVault::open(dir.path()).unwrap();
        let key = generate_key(Scheme::XtsAes128).unwrap();
        vault.keep("AA:BB:CC:DD:EE:01", &key).unwrap();
        let path = dir.path().join("aa-bb-cc-dd-ee-01.key");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            vault.load("aa:bb:cc:dd:ee:01", Scheme::XtsAes128),
            Some(key)
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
