//! Handing back memory that only start-up and the first messages used.
//!
//! Code and constants are mapped from the program's file (and its libraries'), shared with the
//! page cache, and the kernel maps them around every page touched, 64 KiB at a time. Start-up
//! (parsing the command line, compiling the policy, starting the runtime and the server) and a
//! session's first calls (toolgate's own listing of the tools, compiling their schemas, the trust
//! record) run code spread over the binary, and leave freed memory inside the heap. [`release`]
//! unmaps every read-only page mapped from a file, and returns the heap's free pages to the
//! system (`malloc_trim`): the pages of code stay in the page cache, and the ones the proxy still
//! runs come back on their first touch, at the cost of a minor fault each. The proxy calls it
//! when it first has nothing at hand after its 2nd, 32nd, 512th, ... event (`super::drive`),
//! so that what stays resident is what it keeps running.
//!
//! Only what can be read again from the file is unmapped: segments without write permission,
//! never a page that shares a writable segment or the relocated, read-only-after-start data
//! (RELRO), never an object whose code was patched when loaded (`DT_TEXTREL`), never the vDSO.
//! (A breakpoint a debugger or a uprobe wrote into the code is dropped with its page.)

/// How many more events the proxy handles before it releases again: releases come at the first
/// idle moments after 2, 32, 512, 8192, ... events, a handful in a session's life.
pub const NEXT_RELEASE_AFTER: u64 = 16;

/// Unmaps the read-only, file-backed pages of the program and its libraries, and returns the
/// heap's free pages.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
pub fn release() {
    unmap_code();
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free memory to the system; every allocation stays valid.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// Unmaps the read-only, file-backed pages of the program and its libraries.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
fn unmap_code() {
    use nix::libc;
    use std::ffi::{c_int, c_void};

    const DT_NULL: i64 = 0;
    const DT_TEXTREL: i64 = 22;
    const DT_FLAGS: i64 = 30;
    const DF_TEXTREL: u64 = 0x4;

    /// One loaded object: release its read-only segments.
    unsafe extern "C" fn each(info: *mut libc::dl_phdr_info, _: usize, _: *mut c_void) -> c_int {
        // SAFETY: the loader passes a valid `dl_phdr_info` whose program headers it keeps
        // mapped for the duration of the callback.
        let info = unsafe { &*info };
        if info.dlpi_phdr.is_null() {
            return 0;
        }
        // SAFETY: as above, `dlpi_phnum` headers start at `dlpi_phdr`.
        let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
        let base = info.dlpi_addr;
        let page = page_size();
        let vdso = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) };
        let mut keep: Vec<(u64, u64)> = Vec::new();
        let mut release: Vec<(u64, u64)> = Vec::new();
        for h in headers {
            let (start, end) = (base.wrapping_add(h.p_vaddr), base.wrapping_add(h.p_vaddr).wrapping_add(h.p_memsz));
            match h.p_type {
                libc::PT_LOAD if vdso != 0 && (start..end.max(start + 1)).contains(&vdso) => return 0,
                libc::PT_LOAD if h.p_flags & libc::PF_W == 0 => {
                    release.push((start.next_multiple_of(page), end / page * page));
                }
                libc::PT_LOAD | libc::PT_GNU_RELRO => keep.push((start / page * page, end.next_multiple_of(page))),
                // SAFETY: the dynamic section of a loaded object is mapped, and ends with `DT_NULL`.
                libc::PT_DYNAMIC if unsafe { patched_when_loaded(start as *const [i64; 2]) } => return 0,
                _ => {}
            }
        }
        for (start, end) in release {
            // Pages shared with a writable range stay: they may hold data written since.
            let mut cut = vec![(start, end)];
            for &(k_start, k_end) in &keep {
                cut = cut
                    .into_iter()
                    .flat_map(|(s, e)| [(s, e.min(k_start)), (s.max(k_end), e)])
                    .filter(|(s, e)| s < e)
                    .collect();
            }
            for (s, e) in cut {
                // SAFETY: the range is whole pages of a read-only mapping of a file; unmapped,
                // they read the same bytes from the file when touched again.
                unsafe { libc::madvise(s as *mut c_void, (e - s) as usize, libc::MADV_DONTNEED) };
            }
        }
        0
    }

    /// Whether an object's dynamic section asks for relocations in its code.
    unsafe fn patched_when_loaded(mut entry: *const [i64; 2]) -> bool {
        loop {
            // SAFETY: the caller passes a dynamic section, which ends with `DT_NULL`.
            let [tag, value] = unsafe { *entry };
            match tag {
                DT_NULL => return false,
                DT_TEXTREL => return true,
                DT_FLAGS if value as u64 & DF_TEXTREL != 0 => return true,
                _ => {}
            }
            // SAFETY: not past `DT_NULL` yet.
            entry = unsafe { entry.add(1) };
        }
    }

    fn page_size() -> u64 {
        nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok().flatten().map_or(4096, |p| p as u64)
    }

    // SAFETY: the callback only reads what the loader hands it and calls madvise.
    unsafe { libc::dl_iterate_phdr(Some(each), std::ptr::null_mut()) };
}

/// Elsewhere the pages stay as they are.
#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
pub fn release() {}

#[cfg(all(test, target_os = "linux", target_pointer_width = "64"))]
mod tests {
    /// The file-backed pages this process has resident, in kB.
    fn file_resident() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("RssFile:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn released_pages_read_the_same_when_touched_again() {
        // Code and constants from all over the binary: a regex compiled, JSON parsed and printed.
        let run = || {
            let re = regex_automata::meta::Regex::new(r"(?i)^[a-z]+\d{2,}$").unwrap();
            let value: serde_json::Value = serde_json::from_str(r#"{"a":[1,2.5,"x\u00e9"],"b":null}"#).unwrap();
            (re.is_match("Tool42"), value.to_string(), format!("{:?}", std::path::Path::new("/a/b").parent()))
        };
        let before = run();
        let resident = file_resident();
        super::release();
        assert!(file_resident() < resident, "nothing was released");
        assert_eq!(run(), before);
    }
}
