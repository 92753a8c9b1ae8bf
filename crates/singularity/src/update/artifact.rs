//! What a downloaded `agentupdate` payload is: a static ELF executable for
//! this machine, a `.tar.gz` holding exactly one, or something else, named
//! for the reply. Pure: bytes in, a verdict out; no I/O here.

use flate2::read::GzDecoder;
use std::fmt;
use std::io::Read;

/// `e_machine` of the architecture this binary was built for.
#[cfg(target_arch = "x86_64")]
const MACHINE: u16 = 62;
#[cfg(target_arch = "aarch64")]
const MACHINE: u16 = 183;
#[cfg(target_arch = "x86")]
const MACHINE: u16 = 3;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "x86")))]
const MACHINE: u16 = 0;

/// ELF class of this machine (1: 32-bit, 2: 64-bit).
const CLASS: u8 = if cfg!(target_pointer_width = "64") { 2 } else { 1 };

const PT_INTERP: u32 = 3;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;

/// Why a payload is not a build this agent can run as itself.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A tarball with an `installer.sh` (UNIX's agent update format).
    InstallerTarball,
    /// A tarball with no regular file, or with more than one.
    TarballFiles(usize),
    /// A gzip stream that is not a tar archive, or a corrupt one.
    BadArchive(String),
    /// Starts with `#!`.
    Script,
    /// An ELF file of the wrong class, byte order or machine.
    WrongArchitecture(String),
    /// An ELF file that is not an executable (object, core dump).
    NotExecutable(u16),
    /// An ELF executable that needs a dynamic loader.
    Dynamic,
    /// A truncated or malformed ELF header.
    BadElf(&'static str),
    /// Anything else.
    Unknown,
    /// Unpacked larger than allowed.
    TooLarge(u64),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::InstallerTarball => f.write_str(
                "an installer tarball (installer.sh, the old agent's update format), not a singularity build",
            ),
            Refusal::TarballFiles(0) => f.write_str("a tarball with no regular file, not a singularity build"),
            Refusal::TarballFiles(n) => write!(
                f,
                "a tarball with {n} files; a singularity build tarball holds exactly one"
            ),
            Refusal::BadArchive(why) => write!(f, "a gzip file that is not a readable tar archive ({why})"),
            Refusal::Script => f.write_str("a script (#!), not a singularity build"),
            Refusal::WrongArchitecture(what) => write!(f, "an ELF executable for another architecture ({what})"),
            Refusal::NotExecutable(t) => write!(f, "an ELF file that is not an executable (type {t})"),
            Refusal::Dynamic => f.write_str(
                "a dynamically linked ELF executable (it has an interpreter); a singularity build is static",
            ),
            Refusal::BadElf(why) => write!(f, "a malformed ELF file ({why})"),
            Refusal::Unknown => f.write_str("neither an ELF executable nor a .tar.gz, not a singularity build"),
            Refusal::TooLarge(max) => write!(f, "a tarball that unpacks to more than {max} bytes"),
        }
    }
}

/// The executable inside a payload: the payload itself (not copied), or the
/// one file of its tarball (the payload is freed once it is unpacked).
pub fn executable(payload: Vec<u8>, max: u64) -> Result<Vec<u8>, Refusal> {
    if payload.starts_with(&[0x1f, 0x8b]) {
        let inner = unpack_one(&payload, max)?;
        drop(payload);
        check_elf(&inner)?;
        return Ok(inner);
    }
    check_elf(&payload)?;
    Ok(payload)
}

/// What a `.tar.gz` may unpack to beyond its one build: headers and names.
const ARCHIVE_SLACK: u64 = 1 << 20;

/// The one regular file of a `.tar.gz`; refuses UNIX's installer tarballs
/// and archives with any other number of files.
fn unpack_one(payload: &[u8], max: u64) -> Result<Vec<u8>, Refusal> {
    let bad = |e: std::io::Error| Refusal::BadArchive(e.to_string());
    // Everything the archive unpacks to, headers (a GNU long name is read
    // whole into memory) and skipped entries included, is capped: one
    // build and a little room for its headers.
    let unpacked = GzDecoder::new(payload).take(max.saturating_add(ARCHIVE_SLACK));
    let mut archive = tar::Archive::new(unpacked);
    let mut files = 0usize;
    let mut installer = false;
    let mut found = None;
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path = entry.path().map_err(bad)?.into_owned();
        if path.file_name().is_some_and(|n| n == "installer.sh") {
            installer = true;
        }
        if !entry.header().entry_type().is_file() {
            continue;
        }
        files += 1;
        if files == 1 {
            let mut data = Vec::new();
            (&mut entry).take(max + 1).read_to_end(&mut data).map_err(bad)?;
            if data.len() as u64 > max {
                return Err(Refusal::TooLarge(max));
            }
            found = Some(data);
        }
    }
    if installer {
        return Err(Refusal::InstallerTarball);
    }
    match (files, found) {
        (1, Some(data)) => Ok(data),
        (n, _) => Err(Refusal::TarballFiles(n)),
    }
}

/// Checks the ELF header and program headers: this machine's class, byte
/// order and architecture, an executable, and no `PT_INTERP`.
pub fn check_elf(data: &[u8]) -> Result<(), Refusal> {
    if data.starts_with(b"#!") {
        return Err(Refusal::Script);
    }
    if !data.starts_with(b"\x7fELF") {
        return Err(Refusal::Unknown);
    }
    if data.len() < 52 {
        return Err(Refusal::BadElf("header truncated"));
    }
    let class = data[4];
    let little = match data[5] {
        1 => true,
        2 => false,
        _ => return Err(Refusal::BadElf("unknown byte order")),
    };
    let u16_at = |off: usize| -> Option<u16> {
        let b: [u8; 2] = data.get(off..off.checked_add(2)?)?.try_into().ok()?;
        Some(if little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    };
    let u32_at = |off: usize| -> Option<u32> {
        let b: [u8; 4] = data.get(off..off.checked_add(4)?)?.try_into().ok()?;
        Some(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    let u64_at = |off: usize| -> Option<u64> {
        let b: [u8; 8] = data.get(off..off.checked_add(8)?)?.try_into().ok()?;
        Some(if little {
            u64::from_le_bytes(b)
        } else {
            u64::from_be_bytes(b)
        })
    };
    let machine = u16_at(18).ok_or(Refusal::BadElf("header truncated"))?;
    let native_little = cfg!(target_endian = "little");
    if class != CLASS || machine != MACHINE || little != native_little {
        let bits = match class {
            1 => "32-bit",
            2 => "64-bit",
            _ => "unknown class",
        };
        let order = if little { "little-endian" } else { "big-endian" };
        return Err(Refusal::WrongArchitecture(format!(
            "{bits} {order} {}",
            machine_name(machine)
        )));
    }
    let kind = u16_at(16).ok_or(Refusal::BadElf("header truncated"))?;
    if kind != ET_EXEC && kind != ET_DYN {
        return Err(Refusal::NotExecutable(kind));
    }
    // Program header table: offset, entry size, count.
    let (phoff, phentsize, phnum) = if class == 2 {
        (
            u64_at(32).ok_or(Refusal::BadElf("header truncated"))?,
            u16_at(54).ok_or(Refusal::BadElf("header truncated"))?,
            u16_at(56).ok_or(Refusal::BadElf("header truncated"))?,
        )
    } else {
        (
            u64::from(u32_at(28).ok_or(Refusal::BadElf("header truncated"))?),
            u16_at(42).ok_or(Refusal::BadElf("header truncated"))?,
            u16_at(44).ok_or(Refusal::BadElf("header truncated"))?,
        )
    };
    if phnum == 0 || phentsize < 4 {
        return Err(Refusal::BadElf("no program headers"));
    }
    for i in 0..usize::from(phnum) {
        let off = usize::try_from(phoff)
            .ok()
            .and_then(|o| o.checked_add(i * usize::from(phentsize)))
            .ok_or(Refusal::BadElf("program headers out of the file"))?;
        let p_type = u32_at(off).ok_or(Refusal::BadElf("program headers out of the file"))?;
        if p_type == PT_INTERP {
            return Err(Refusal::Dynamic);
        }
    }
    Ok(())
}

fn machine_name(machine: u16) -> String {
    match machine {
        3 => "x86".into(),
        8 => "MIPS".into(),
        20 => "PowerPC".into(),
        21 => "PowerPC64".into(),
        22 => "s390".into(),
        40 => "ARM".into(),
        62 => "x86-64".into(),
        183 => "AArch64".into(),
        243 => "RISC-V".into(),
        other => format!("machine {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_archive_that_unpacks_to_more_than_a_build_is_refused_early() {
        use std::io::Write;
        // A GNU long-name entry declaring 64 MiB (the tar reader would hold
        // it whole in memory), which compresses to almost nothing.
        let mut header = tar::Header::new_gnu();
        header.set_path("././@LongLink").unwrap();
        header.set_entry_type(tar::EntryType::GNULongName);
        header.set_size(64 << 20);
        header.set_cksum();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(header.as_bytes()).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            gz.write_all(&zeros).unwrap();
        }
        let bomb = gz.finish().unwrap();
        assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
        match unpack_one(&bomb, 1 << 20) {
            Err(Refusal::BadArchive(_)) => {}
            other => panic!("{:?}", other.map(|d| d.len())),
        }
    }

    /// A minimal 64-bit little-endian ELF header with program headers.
    fn elf(class: u8, machine: u16, kind: u16, interp: bool) -> Vec<u8> {
        let mut d = vec![0u8; 64 + 2 * 56];
        d[..4].copy_from_slice(b"\x7fELF");
        d[4] = class;
        d[5] = 1;
        d[6] = 1;
        d[16..18].copy_from_slice(&kind.to_le_bytes());
        d[18..20].copy_from_slice(&machine.to_le_bytes());
        d[32..40].copy_from_slice(&64u64.to_le_bytes());
        d[54..56].copy_from_slice(&56u16.to_le_bytes());
        d[56..58].copy_from_slice(&2u16.to_le_bytes());
        d[64..68].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        let second = if interp { PT_INTERP } else { 1 };
        d[120..124].copy_from_slice(&second.to_le_bytes());
        d
    }

    fn tgz(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        for (name, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o755);
            header.set_cksum();
            builder.append_data(&mut header, name, *data).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn static_executables_of_this_machine_only() {
        assert_eq!(check_elf(&elf(2, 62, ET_EXEC, false)), Ok(()));
        assert_eq!(check_elf(&elf(2, 62, ET_DYN, false)), Ok(()));
        assert_eq!(check_elf(&elf(2, 62, ET_DYN, true)), Err(Refusal::Dynamic));
        assert_eq!(check_elf(&elf(2, 62, 1, false)), Err(Refusal::NotExecutable(1)));
        assert_eq!(
            check_elf(&elf(2, 183, ET_EXEC, false)).unwrap_err().to_string(),
            "an ELF executable for another architecture (64-bit little-endian AArch64)"
        );
        assert!(matches!(
            check_elf(&elf(1, 3, ET_EXEC, false)),
            Err(Refusal::WrongArchitecture(_))
        ));
        assert_eq!(check_elf(b"#!/bin/sh\necho hi\n"), Err(Refusal::Script));
        assert_eq!(check_elf(b"\x7fELF\x02"), Err(Refusal::BadElf("header truncated")));
        assert_eq!(check_elf(b"hello"), Err(Refusal::Unknown));
        let mut far = elf(2, 62, ET_EXEC, false);
        far[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(check_elf(&far), Err(Refusal::BadElf("program headers out of the file")));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn tarballs_hold_exactly_one_executable() {
        let exe = elf(2, 62, ET_EXEC, false);
        assert_eq!(executable(tgz(&[("singularity", &exe)]), 1 << 20), Ok(exe.clone()));
        assert_eq!(executable(exe.clone(), 1 << 20), Ok(exe.clone()));
        // A bare executable is handed on as it came, not copied.
        let payload = exe.clone();
        let at = payload.as_ptr();
        let handed_on = executable(payload, 1 << 20).unwrap();
        assert_eq!(handed_on.as_ptr(), at);
        assert_eq!(
            executable(tgz(&[("a", &exe), ("b", &exe)]), 1 << 20),
            Err(Refusal::TarballFiles(2))
        );
        assert_eq!(
            executable(
                tgz(&[("nova-agent/installer.sh", b"#!/bin/sh\n"), ("x", &exe)]),
                1 << 20
            ),
            Err(Refusal::InstallerTarball)
        );
        assert_eq!(
            executable(tgz(&[("run.sh", b"#!/bin/sh\n")]), 1 << 20),
            Err(Refusal::Script)
        );
        assert_eq!(executable(tgz(&[("s", &exe)]), 10), Err(Refusal::TooLarge(10)));
        assert!(matches!(
            executable(vec![0x1f, 0x8b, 0, 0], 1 << 20),
            Err(Refusal::BadArchive(_))
        ));
    }
}
