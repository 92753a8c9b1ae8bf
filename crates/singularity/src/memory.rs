//! Keeping the idle daemon small.
//!
//! Most of the daemon's resident memory is its own code. The kernel maps an
//! executable's code in whole windows (64 KiB "fault-around", or a whole large
//! folio of the page cache): touching one instruction maps its neighbours too.
//! Start-up and request handling touch code spread over most of the binary,
//! so after them nearly all of its text stays mapped although waiting for the
//! next request runs a small part of it.
//!
//! [`release_idle`] runs when the daemon has been idle for a while. It
//! releases the pages mapped so far in the binary's read-only segments (code
//! and read-only data, `MADV_DONTNEED`) and returns free heap pages to the
//! kernel (`malloc_trim`). Read-only segments are clean and backed by the
//! binary file: releasing them loses nothing, a released page is mapped again
//! from the page cache when it next runs (the first request after an idle
//! period pays a few dozen minor faults). Writable segments, including the
//! relocated read-only data of a position-independent binary (`PT_GNU_RELRO`
//! lies in a writable `PT_LOAD`), are never touched.

/// Makes every thread allocate from the main heap: glibc would otherwise give
/// each thread that allocates its own arena (at least 132 KiB reserved, tens
/// of KiB resident) although the daemon's threads allocate little. Call it
/// before starting threads.
pub fn one_arena() {
    // SAFETY: mallopt only changes allocator parameters.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
}

#[cfg(target_pointer_width = "64")]
type Phdr = libc::Elf64_Phdr;
#[cfg(target_pointer_width = "32")]
type Phdr = libc::Elf32_Phdr;

/// A page-aligned range of the program's address space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub start: usize,
    pub len: usize,
}

/// The main program's `PT_LOAD` segments that are never writable (code and
/// read-only data), with their page-aligned bounds. Only whole pages inside a
/// segment are included: a page shared with a writable neighbour is left out.
pub fn read_only_segments() -> Vec<Segment> {
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        out: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: the C library passes a valid `dl_phdr_info` whose program
        // headers live as long as the object; `out` is the vector below.
        let (info, out) = unsafe { (&*info, &mut *(out as *mut Vec<Segment>)) };
        // SAFETY: `dlpi_phdr` points to `dlpi_phnum` program headers.
        let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
        if has_text_relocations(info.dlpi_addr as usize, headers) {
            return 1; // its "read-only" pages were written at load time: keep them
        }
        let page = page_size();
        for h in headers {
            if h.p_type != libc::PT_LOAD || h.p_flags & libc::PF_W != 0 {
                continue;
            }
            let first = info.dlpi_addr as usize + h.p_vaddr as usize;
            let start = first.next_multiple_of(page);
            let end = (first + h.p_memsz as usize) / page * page;
            if end > start {
                out.push(Segment {
                    start,
                    len: end - start,
                });
            }
        }
        1 // the first object reported is the main program: stop there
    }
    let mut out: Vec<Segment> = Vec::new();
    // SAFETY: `each` only reads what the C library hands it and appends to `out`.
    unsafe { libc::dl_iterate_phdr(Some(each), &mut out as *mut Vec<Segment> as *mut libc::c_void) };
    out
}

/// Whether the object's dynamic section asks for text relocations (the
/// loader then writes into read-only segments, whose pages are no longer
/// copies of the file).
fn has_text_relocations(base: usize, headers: &[Phdr]) -> bool {
    /// One `ElfN_Dyn` entry (both fields are word-sized).
    #[repr(C)]
    struct Dyn {
        tag: isize,
        val: usize,
    }
    const DT_NULL: isize = 0;
    const DT_TEXTREL: isize = 22;
    const DT_FLAGS: isize = 30;
    const DF_TEXTREL: usize = 0x4;
    let Some(dynamic) = headers.iter().find(|h| h.p_type == libc::PT_DYNAMIC) else {
        return false;
    };
    let mut entry = (base + dynamic.p_vaddr as usize) as *const Dyn;
    let end = (base + (dynamic.p_vaddr + dynamic.p_memsz) as usize) as *const Dyn;
    while entry < end {
        // SAFETY: the entries lie inside the loaded PT_DYNAMIC segment, which
        // ends with DT_NULL.
        let d = unsafe { &*entry };
        match d.tag {
            DT_NULL => break,
            DT_TEXTREL => return true,
            DT_FLAGS if d.val & DF_TEXTREL != 0 => return true,
            _ => {}
        }
        // SAFETY: still inside the segment (checked by the loop condition).
        entry = unsafe { entry.add(1) };
    }
    false
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as usize,
        _ => 4096,
    }
}

/// The sum of `field` (e.g. `Rss:`, in KiB) over the mappings of `smaps`
/// whose header line `selects`; a value that does not parse counts as 1.
fn smaps_kib(smaps: &str, field: &str, mut selects: impl FnMut(&str) -> bool) -> u64 {
    let mut selected = false;
    let mut total = 0;
    for line in smaps.lines() {
        let first = line.split_ascii_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            selected = selects(line);
        } else if selected && first == field {
            total += line
                .split_ascii_whitespace()
                .nth(1)
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(1);
        }
    }
    total
}

/// Whether a mapping overlapping `s` holds private copies of file pages
/// (`Anonymous:` above zero in `smaps`): breakpoints of a debugger or uprobes
/// (perf, bpftrace) patch code that way, and releasing the copies would
/// silently remove them.
fn has_private_copies(smaps: &str, s: Segment) -> bool {
    let overlaps = |header: &str| {
        let range = header.split_ascii_whitespace().next().and_then(|r| r.split_once('-'));
        range.is_some_and(|(a, b)| {
            let (a, b) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16));
            a.is_ok_and(|a| a < s.start + s.len) && b.is_ok_and(|b| s.start < b)
        })
    };
    smaps_kib(smaps, "Anonymous:", overlaps) > 0
}

/// Releases the mapped pages of the program's read-only segments and the
/// allocator's free pages. Returns the number of bytes of address space
/// advised (not all of it was resident). A segment with private copies of its
/// pages (see [`has_private_copies`]), or any segment when `smaps` cannot be
/// read, is left alone.
pub fn release_idle() -> Result<usize, String> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").map_err(|e| format!("/proc/self/smaps: {e}"))?;
    let mut advised = 0;
    for s in read_only_segments() {
        if has_private_copies(&smaps, s) {
            log::debug!("code at {:#x} is patched (breakpoints, uprobes): kept", s.start);
            continue;
        }
        // SAFETY: the range is a read-only, file-backed private mapping of
        // our own binary holding no private copies: dropping its pages only
        // makes the kernel map them again from the file on the next access.
        if unsafe { libc::madvise(s.start as *mut libc::c_void, s.len, libc::MADV_DONTNEED) } != 0 {
            return Err(format!(
                "cannot release code pages at {:#x}: {}",
                s.start,
                std::io::Error::last_os_error()
            ));
        }
        advised += s.len;
    }
    // SAFETY: malloc_trim has no preconditions.
    unsafe { libc::malloc_trim(0) };
    Ok(advised)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resident KiB of this process's executable mappings of its own binary.
    fn resident_code_kib() -> u64 {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        smaps_kib(&smaps, "Rss:", |header| {
            let fields: Vec<&str> = header.split_ascii_whitespace().collect();
            fields.get(1).is_some_and(|p| p.contains('x'))
                && fields.last().is_some_and(|p| std::path::Path::new(p) == exe)
        })
    }

    #[test]
    fn segments_are_the_programs_code_and_never_writable() {
        let segments = read_only_segments();
        assert!(!segments.is_empty());
        let here = segments_are_the_programs_code_and_never_writable as *const () as usize;
        assert!(
            segments.iter().any(|s| (s.start..s.start + s.len).contains(&here)),
            "this test's own code lies in a released segment"
        );
        let page = page_size();
        for s in &segments {
            assert_eq!(s.start % page, 0);
            assert_eq!(s.len % page, 0);
        }
        // The program's data is not in any of them.
        static DATA: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
        let data = &DATA as *const _ as usize;
        assert!(!segments.iter().any(|s| (s.start..s.start + s.len).contains(&data)));
    }

    fn dynamic_header(entries: &[[usize; 2]]) -> Phdr {
        // SAFETY: an all-zero program header is a valid (PT_NULL) header.
        let mut h: Phdr = unsafe { std::mem::zeroed() };
        h.p_type = libc::PT_DYNAMIC;
        h.p_vaddr = entries.as_ptr() as usize as _;
        h.p_memsz = std::mem::size_of_val(entries) as _;
        h
    }

    #[test]
    fn text_relocations_keep_the_segments() {
        // DT_TEXTREL (22), or DF_TEXTREL (4) in DT_FLAGS (30); DT_NULL ends the list.
        let plain = [[1, 7], [30, 0x8], [0, 0], [22, 0]];
        let textrel = [[1, 7], [22, 0], [0, 0]];
        let flags = [[30, 0x4 | 0x8], [0, 0]];
        assert!(!has_text_relocations(0, &[dynamic_header(&plain)]));
        assert!(has_text_relocations(0, &[dynamic_header(&textrel)]));
        assert!(has_text_relocations(0, &[dynamic_header(&flags)]));
        assert!(!has_text_relocations(0, &[]));
    }

    #[test]
    fn patched_code_is_recognised() {
        let smaps = "\
7f0000000000-7f0000010000 r--p 00000000 fe:00 42 /usr/sbin/singularity
Rss:                  64 kB
Anonymous:             0 kB
7f0000010000-7f0000020000 r-xp 00010000 fe:00 42 /usr/sbin/singularity
Rss:                  64 kB
Anonymous:             4 kB
VmFlags: rd ex mr mw me
7f0000020000-7f0000021000 rw-p 00020000 fe:00 42 /usr/sbin/singularity
Anonymous:             4 kB
";
        let segment = |start: usize, len: usize| Segment { start, len };
        assert!(!has_private_copies(smaps, segment(0x7f00_0000_0000, 0x10000)));
        assert!(has_private_copies(smaps, segment(0x7f00_0001_0000, 0x10000)));
        assert!(
            has_private_copies(smaps, segment(0x7f00_0000_f000, 0x2000)),
            "overlapping"
        );
        assert!(
            !has_private_copies(smaps, segment(0x7f00_0003_0000, 0x1000)),
            "nothing there"
        );
    }

    #[test]
    fn releasing_unmaps_code_and_the_program_keeps_running() {
        let before = resident_code_kib();
        let advised = release_idle().unwrap();
        let after = resident_code_kib();
        assert!(advised > 0);
        assert!(after < before, "resident code {before} KiB before, {after} KiB after");
        // Code and read-only data come back from the file as they are used.
        let words: Vec<String> = ["released", "code", "runs"].iter().map(|w| w.to_uppercase()).collect();
        assert_eq!(words.join(" "), "RELEASED CODE RUNS");
        assert!(resident_code_kib() > 0);
    }
}
