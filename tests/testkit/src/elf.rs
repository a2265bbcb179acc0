//! Minimal static ELF executables, to stand in for a flasher binary where only its
//! ELF identity matters.

/// ELF `e_machine` of x86-64.
pub const EM_X86_64: u16 = 62;
/// ELF `e_machine` of AArch64.
pub const EM_AARCH64: u16 = 183;

const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;

/// A 64-bit little-endian executable for `machine` with one `PT_LOAD` segment and, when
/// `interpreter` is given, a `PT_INTERP` naming it (a dynamically linked executable).
pub fn executable(machine: u16, interpreter: Option<&str>) -> Vec<u8> {
    let phnum: u16 = if interpreter.is_some() { 2 } else { 1 };
    let code_at = 64 + 56 * u64::from(phnum);
    let mut code = vec![0xCC; 64];
    let interp_at = code_at + code.len() as u64;
    if let Some(path) = interpreter {
        code.extend_from_slice(path.as_bytes());
        code.push(0);
    }
    let total = code_at + code.len() as u64;
    let base = 0x40_0000u64;

    let mut elf = Vec::new();
    elf.extend_from_slice(b"\x7fELF");
    elf.extend_from_slice(&[2, 1, 1, 0]); // 64-bit, little-endian, version 1, System V
    elf.extend_from_slice(&[0; 8]);
    elf.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf.extend_from_slice(&machine.to_le_bytes());
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.extend_from_slice(&(base + code_at).to_le_bytes()); // entry
    elf.extend_from_slice(&64u64.to_le_bytes()); // phoff
    elf.extend_from_slice(&0u64.to_le_bytes()); // shoff
    elf.extend_from_slice(&0u32.to_le_bytes()); // flags
    elf.extend_from_slice(&64u16.to_le_bytes()); // ehsize
    elf.extend_from_slice(&56u16.to_le_bytes()); // phentsize
    elf.extend_from_slice(&phnum.to_le_bytes());
    elf.extend_from_slice(&64u16.to_le_bytes()); // shentsize
    elf.extend_from_slice(&0u16.to_le_bytes()); // shnum
    elf.extend_from_slice(&0u16.to_le_bytes()); // shstrndx

    let mut phdr = |ty: u32, flags: u32, offset: u64, size: u64| {
        elf.extend_from_slice(&ty.to_le_bytes());
        elf.extend_from_slice(&flags.to_le_bytes());
        elf.extend_from_slice(&offset.to_le_bytes());
        elf.extend_from_slice(&(base + offset).to_le_bytes());
        elf.extend_from_slice(&(base + offset).to_le_bytes());
        elf.extend_from_slice(&size.to_le_bytes());
        elf.extend_from_slice(&size.to_le_bytes());
        elf.extend_from_slice(&0x1000u64.to_le_bytes());
    };
    if let Some(path) = interpreter {
        phdr(PT_INTERP, 4, interp_at, path.len() as u64 + 1);
    }
    phdr(PT_LOAD, 5, 0, total);
    elf.extend_from_slice(&code);
    elf
}
