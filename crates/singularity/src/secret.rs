//! A wrapper for secrets (passwords, keys, plaintexts) that never prints its
//! content and is wiped from memory when dropped.

use std::fmt;
use zeroize::Zeroize;

/// A value that must not reach a log: `Debug` and `Display` print `***`, and the
/// memory is zeroed on drop.
pub struct Secret<T: Zeroize>(T);

impl<T: Zeroize> Secret<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Secret<T> {
        Secret(value)
    }

    /// The wrapped value. Callers must not log or format it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T: Zeroize> Drop for Secret<T> {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl<T: Zeroize> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<T: Zeroize> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A global allocator that wipes every block it frees (and the old block of
/// every reallocation that moves): request bytes, decoded files, parsed
/// JSON and the other transient copies of what the host sent leave nothing
/// behind in free heap memory. The agent allocates little, so the cost is
/// small; buffers kept for reuse are the owners' to wipe.
pub struct WipingAllocator;

// SAFETY: every call forwards to the system allocator with the caller's
// layout; the only addition is wiping a block the caller gives up.
unsafe impl std::alloc::GlobalAlloc for WipingAllocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is passed on.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: `ptr` is a live block of `layout.size()` bytes that the
        // caller gives up; it is wiped, then freed.
        unsafe {
            std::slice::from_raw_parts_mut(ptr, layout.size()).zeroize();
            std::alloc::System.dealloc(ptr, layout)
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        // Never let the system allocator move the block itself: it would
        // free the old copy unwiped.
        // SAFETY: the caller guarantees `new_size` with `layout.align()` is a
        // valid layout; the old block is live for `layout.size()` bytes.
        unsafe {
            let new_layout = std::alloc::Layout::from_size_align_unchecked(new_size, layout.align());
            let new = std::alloc::System.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_formats_its_content() {
        let s = Secret::new(String::from("hunter2"));
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        assert_eq!(s.expose(), "hunter2");
    }
}
