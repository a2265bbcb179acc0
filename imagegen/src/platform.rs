//! The platforms flash images are built for.

use std::fmt;
use std::str::FromStr;

/// A container platform the flasher runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Platform {
    /// linux/amd64.
    Amd64,
    /// linux/arm64.
    Arm64,
}

impl Platform {
    /// Every platform, in index order.
    pub const ALL: [Platform; 2] = [Platform::Amd64, Platform::Arm64];

    /// The OCI architecture name (`amd64`).
    pub fn arch(self) -> &'static str {
        match self {
            Platform::Amd64 => "amd64",
            Platform::Arm64 => "arm64",
        }
    }

    /// ELF `e_machine` of its executables.
    pub fn elf_machine(self) -> u16 {
        match self {
            Platform::Amd64 => 62,
            Platform::Arm64 => 183,
        }
    }

    /// The platform whose executables have ELF machine `machine`.
    pub fn from_elf_machine(machine: u16) -> Option<Platform> {
        Platform::ALL
            .into_iter()
            .find(|p| p.elf_machine() == machine)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "linux/{}", self.arch())
    }
}

impl FromStr for Platform {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "linux/amd64" | "amd64" | "x86_64" => Ok(Platform::Amd64),
            "linux/arm64" | "arm64" | "aarch64" | "linux/arm64/v8" => Ok(Platform::Arm64),
            _ => Err(format!(
                "unknown platform '{s}': use linux/amd64 or linux/arm64"
            )),
        }
    }
}
