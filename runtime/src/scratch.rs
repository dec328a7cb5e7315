//! The per-context scratch arena handed to compiled models.

use std::alloc::{alloc_zeroed, dealloc, Layout};

/// Alignment of the arena: one cache line, and enough for any vector load
/// the code generator emits (AVX-512 / SVE-512 included).
pub const SCRATCH_ALIGN: usize = 64;

/// A growable, 64-byte-aligned byte buffer. Contents are not preserved when
/// it grows; the compiler's memory plan treats scratch as per-run storage.
pub struct Scratch {
    ptr: *mut u8,
    layout: Option<Layout>,
}

// SAFETY: `Scratch` exclusively owns its allocation; the raw pointer is only
// an address, and access to the struct itself is serialised by the owner.
unsafe impl Send for Scratch {}

impl Scratch {
    /// An empty arena; nothing is allocated until the first request.
    pub const fn new() -> Scratch {
        Scratch {
            ptr: std::ptr::null_mut(),
            layout: None,
        }
    }

    /// Current capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.layout.map_or(0, |l| l.size())
    }

    /// Returns an arena of at least `bytes` bytes, reallocating only when
    /// `bytes` exceeds the current capacity. Returns null if the size is not
    /// representable or the allocation fails; the previous buffer is then
    /// kept, so earlier pointers stay valid.
    pub fn get(&mut self, bytes: u64) -> *mut u8 {
        if !self.ptr.is_null() && bytes <= self.capacity() as u64 {
            return self.ptr;
        }
        let Some(layout) = Self::layout_for(bytes) else {
            return std::ptr::null_mut();
        };
        // SAFETY: `layout` has non-zero size (at least SCRATCH_ALIGN).
        // Zeroed memory keeps runs reproducible if a model ever reads a
        // scratch byte before writing it; for large sizes this is as cheap
        // as plain allocation (fresh pages from the OS).
        let new = unsafe { alloc_zeroed(layout) };
        if new.is_null() {
            return std::ptr::null_mut();
        }
        self.release();
        self.ptr = new;
        self.layout = Some(layout);
        new
    }

    fn layout_for(bytes: u64) -> Option<Layout> {
        let bytes = usize::try_from(bytes).ok()?.max(SCRATCH_ALIGN);
        let rounded = bytes.checked_add(SCRATCH_ALIGN - 1)? & !(SCRATCH_ALIGN - 1);
        Layout::from_size_align(rounded, SCRATCH_ALIGN).ok()
    }

    fn release(&mut self) {
        if let Some(layout) = self.layout.take() {
            // SAFETY: `ptr` was allocated with exactly this layout.
            unsafe { dealloc(self.ptr, layout) };
            self.ptr = std::ptr::null_mut();
        }
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.release();
    }
}
