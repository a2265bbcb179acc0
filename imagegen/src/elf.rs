//! Checks on the flasher executables: the platform's ELF machine, and statically linked.

use std::path::Path;

use crate::error::{Error, Result};
use crate::platform::Platform;

const PT_INTERP: u32 = 3;

/// Checks that `bytes` is a 64-bit little-endian ELF executable for `platform` with no program
/// interpreter (so it runs in a `FROM scratch` image).
pub fn check_static_executable(path: &Path, bytes: &[u8], platform: Platform) -> Result<()> {
    let fail = |problem: String| {
        Error::input(
            path,
            problem,
            format!(
                "build it with scripts/build-flasher (a static {} executable)",
                platform
            ),
        )
    };
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return Err(fail("not an ELF executable".into()));
    }
    if bytes[4] != 2 || bytes[5] != 1 {
        return Err(fail("not a 64-bit little-endian ELF".into()));
    }
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let machine = u16_at(18);
    if machine != platform.elf_machine() {
        let found = Platform::from_elf_machine(machine)
            .map(|p| p.to_string())
            .unwrap_or_else(|| format!("ELF machine {machine}"));
        return Err(Error::input(
            path,
            format!("built for {found}, but given as the {platform} flasher"),
            format!("pass the {platform} build with --flasher {platform}=PATH"),
        ));
    }
    let e_type = u16_at(16);
    if e_type != 2 && e_type != 3 {
        return Err(fail(format!("ELF type {e_type} is not an executable")));
    }
    let (phoff, phentsize, phnum) = (
        u64_at(32) as usize,
        u16_at(54) as usize,
        u16_at(56) as usize,
    );
    for i in 0..phnum {
        let at = phoff.saturating_add(i.saturating_mul(phentsize));
        if at.saturating_add(4) > bytes.len() {
            return Err(fail("truncated ELF program headers".into()));
        }
        if u32_at(at) == PT_INTERP {
            return Err(fail(
                "dynamically linked (it has a program interpreter), so it cannot run in a FROM scratch image"
                    .into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::elf::{EM_AARCH64, EM_X86_64, executable};

    #[test]
    fn accepts_static_and_rejects_the_rest() {
        let p = Path::new("flasher");
        check_static_executable(p, &executable(EM_X86_64, None), Platform::Amd64).unwrap();
        check_static_executable(p, &executable(EM_AARCH64, None), Platform::Arm64).unwrap();
        let wrong = check_static_executable(p, &executable(EM_X86_64, None), Platform::Arm64);
        assert!(
            wrong
                .unwrap_err()
                .to_string()
                .contains("built for linux/amd64")
        );
        let dynamic = executable(EM_X86_64, Some("/lib64/ld-linux-x86-64.so.2"));
        let err = check_static_executable(p, &dynamic, Platform::Amd64).unwrap_err();
        assert!(err.to_string().contains("dynamically linked"));
        assert!(check_static_executable(p, b"#!/bin/sh\n", Platform::Amd64).is_err());
    }
}
