//! UMA zones as owning boxes.
//!
//! The C shim creates one zone per kind of object ([`Zone`]) at module load
//! with the item sizes [`zone_sizes`] reports, ctor/dtor set and init/fini
//! NULL, so an INVARIANTS kernel fills every freed item with `0xdeadc0de`
//! and checks the fill on reuse (reference §1.7).
//!
//! [`ZoneBox<T>`] owns one item holding a `T`; dropping it drops the `T`
//! and returns the item to its zone. [`KBuf`] owns one log-block buffer.
//! [`KSlots<T>`] owns one of the core's long-lived tables, in malloc(9)
//! memory (`M_RZIL`).

use crate::ffi;
use core::marker::PhantomData;
use core::mem::{align_of, size_of};
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;
use rzil::platform::AllocError;

/// The zones the shim creates (`enum rzil_zone`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Zone {
    /// lwb objects.
    Lwb = ffi::RZIL_ZONE_LWB,
    /// itx objects.
    Itx = ffi::RZIL_ZONE_ITX,
    /// One per in-flight BIO_WRITE/BIO_FLUSH.
    Io = ffi::RZIL_ZONE_IO,
    /// Log-block buffers of `kern.rzil.max_block_size` bytes.
    Buf = ffi::RZIL_ZONE_BUF,
}

/// A type that lives in a given zone. Implemented only for the types whose
/// size [`zone_sizes`] reports for that zone.
///
/// # Safety
///
/// `ZONE`'s items must be at least `size_of::<Self>()` bytes and aligned to
/// `align_of::<Self>()`, i.e. [`zone_sizes`] must cover `Self` for `ZONE`.
pub unsafe trait ZoneItem: Sized {
    /// The zone items of this type come from.
    const ZONE: Zone;
}

/// Item sizes for the shim's zones; the buffer size is the shim's tunable.
pub fn zone_sizes(
    sizes: &mut ffi::rzil_zone_sizes,
    lwb: usize,
    itx: usize,
    io: usize,
    align: usize,
) {
    sizes.rz_size_bytes[Zone::Lwb as usize] = lwb as u32;
    sizes.rz_size_bytes[Zone::Itx as usize] = itx as u32;
    sizes.rz_size_bytes[Zone::Io as usize] = io as u32;
    // The shim overrides this with kern.rzil.max_block_size.
    sizes.rz_size_bytes[Zone::Buf as usize] = rzil::limits::LWB_BLOCK_SIZE_MAX_BYTES;
    sizes.rz_align_bytes = align as u32;
}

/// One zone item holding a `T`.
///
/// # Invariants
///
/// `ptr` points to a live, initialised `T` in an item of `T::ZONE` that
/// this box alone owns.
pub struct ZoneBox<T: ZoneItem> {
    ptr: NonNull<T>,
    _owns: PhantomData<T>,
}

// SAFETY: the box owns its item exclusively; sending it sends the T.
unsafe impl<T: ZoneItem + Send> Send for ZoneBox<T> {}
// SAFETY: shared access only hands out &T.
unsafe impl<T: ZoneItem + Sync> Sync for ZoneBox<T> {}

impl<T: ZoneItem> ZoneBox<T> {
    /// Allocate without sleeping (the core may hold its log lock).
    pub fn try_new(value: T) -> Result<Self, AllocError> {
        // SAFETY: M_NOWAIT allocation from a zone the shim created at load.
        let raw = unsafe { ffi::rzil_shim_zalloc(T::ZONE as ffi::rzil_zone) };
        Self::fill(raw, value)
    }

    /// Allocate, sleeping if memory is short. Only with no lock held.
    pub fn new_sleeping(value: T) -> Self {
        // SAFETY: M_WAITOK allocation; callers hold no lock (documented).
        let raw = unsafe { ffi::rzil_shim_zalloc_wait(T::ZONE as ffi::rzil_zone) };
        match Self::fill(raw, value) {
            Ok(b) => b,
            // M_WAITOK never returns NULL.
            Err(AllocError) => panic!("uma_zalloc(M_WAITOK) returned NULL"),
        }
    }

    fn fill(raw: *mut core::ffi::c_void, value: T) -> Result<Self, AllocError> {
        let ptr = NonNull::new(raw.cast::<T>()).ok_or(AllocError)?;
        debug_assert_eq!(ptr.as_ptr() as usize % align_of::<T>(), 0);
        // SAFETY: the item is at least size_of::<T>() bytes, suitably
        // aligned (ZoneItem contract) and ours alone; it holds no T yet.
        unsafe { ptr.as_ptr().write(value) };
        // INVARIANT: `ptr` now holds an initialised T we own.
        Ok(ZoneBox {
            ptr,
            _owns: PhantomData,
        })
    }

    /// Give up ownership for a trip through C (bio_caller2); take it back
    /// with [`ZoneBox::from_raw`].
    pub fn into_raw(self) -> *mut T {
        let p = self.ptr.as_ptr();
        core::mem::forget(self);
        p
    }

    /// Take back a box given away by [`ZoneBox::into_raw`].
    ///
    /// # Safety
    ///
    /// `p` must come from `into_raw` of a `ZoneBox<T>` and not have been
    /// taken back before.
    pub unsafe fn from_raw(p: *mut T) -> Self {
        ZoneBox {
            // SAFETY: into_raw never returns NULL (caller's contract).
            ptr: unsafe { NonNull::new_unchecked(p) },
            _owns: PhantomData,
        }
    }
}

impl<T: ZoneItem> Deref for ZoneBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: type invariant: initialised T owned by this box.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: ZoneItem> DerefMut for ZoneBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: type invariant, and `&mut self` gives exclusive access.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T: ZoneItem> Drop for ZoneBox<T> {
    fn drop(&mut self) {
        // SAFETY: the T is initialised and owned; after drop_in_place the
        // item is returned to the zone it came from and never used again.
        unsafe {
            core::ptr::drop_in_place(self.ptr.as_ptr());
            ffi::rzil_shim_zfree(T::ZONE as ffi::rzil_zone, self.ptr.as_ptr().cast());
        }
    }
}

impl<T: ZoneItem + core::fmt::Debug> core::fmt::Debug for ZoneBox<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        (**self).fmt(f)
    }
}

/// One log-block buffer from the buffer zone, seen as `len` bytes.
///
/// # Invariants
///
/// `ptr` is an item of [`Zone::Buf`] owned by this buffer, at least
/// `capacity_bytes` long, and `len <= capacity_bytes`.
pub struct KBuf {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the buffer owns its memory exclusively.
unsafe impl Send for KBuf {}

impl KBuf {
    /// A buffer of `len` bytes; `len` must not exceed `capacity_bytes`,
    /// the buffer zone's item size. Never sleeps.
    pub fn try_new(len: usize, capacity_bytes: usize) -> Result<Self, AllocError> {
        if len > capacity_bytes {
            return Err(AllocError);
        }
        // SAFETY: M_NOWAIT allocation from the buffer zone.
        let raw = unsafe { ffi::rzil_shim_zalloc(ffi::RZIL_ZONE_BUF as ffi::rzil_zone) };
        let ptr = NonNull::new(raw.cast::<u8>()).ok_or(AllocError)?;
        // INVARIANT: the item is capacity_bytes long and len fits in it;
        // the zone ctor zeroed it, so every byte is initialised.
        Ok(KBuf { ptr, len })
    }

    /// The start of the buffer, for the bio.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Deref for KBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: type invariant: `len` initialised bytes owned by us.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for KBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in deref, with exclusive access through &mut self.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for KBuf {
    fn drop(&mut self) {
        // SAFETY: the item came from the buffer zone and is ours alone.
        unsafe {
            ffi::rzil_shim_zfree(
                ffi::RZIL_ZONE_BUF as ffi::rzil_zone,
                self.ptr.as_ptr().cast(),
            )
        }
    }
}

impl core::fmt::Debug for KBuf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KBuf").field("len", &self.len).finish()
    }
}

/// Largest table [`KSlots`] allocates, in bytes (the core's largest, the
/// commit-waiter table, is about 5 KiB).
pub const SLOTS_BYTES_MAX: usize = 64 * 1024;

/// A table of `len` `T`s in one malloc(9) allocation, filled slot by slot
/// in place: `rzil::Platform::Slots` for the kernel, so the core's tables
/// never sit on a kernel stack.
///
/// # Invariants
///
/// `ptr` points to `len >= 1` initialised `T`s, aligned for `T`, in one
/// allocation from `rzil_shim_malloc` that this table alone owns.
pub struct KSlots<T> {
    ptr: NonNull<T>,
    len: usize,
    _owns: PhantomData<T>,
}

// SAFETY: the table owns its slots exclusively; sending it sends the Ts.
unsafe impl<T: Send> Send for KSlots<T> {}
// SAFETY: shared access only hands out &[T].
unsafe impl<T: Sync> Sync for KSlots<T> {}

impl<T> KSlots<T> {
    /// Allocate `len` slots and write `init(i)` into slot `i`, one slot at
    /// a time. Sleeps if memory is short: only with no lock held (the core
    /// calls it from `Zil::new`, in the attach ioctl).
    pub fn new_sleeping(len: usize, mut init: impl FnMut(usize) -> T) -> Result<Self, AllocError> {
        let bytes = len.checked_mul(size_of::<T>()).ok_or(AllocError)?;
        if bytes == 0 || bytes > SLOTS_BYTES_MAX {
            return Err(AllocError);
        }
        // SAFETY: an M_WAITOK allocation of `bytes` bytes; the caller holds
        // no lock (documented above).
        let raw = unsafe { ffi::rzil_shim_malloc(bytes) };
        let ptr = NonNull::new(raw.cast::<T>()).ok_or(AllocError)?;
        if !ptr.as_ptr().is_aligned() {
            // SAFETY: `raw` came from rzil_shim_malloc and holds no T.
            unsafe { ffi::rzil_shim_free(raw) };
            return Err(AllocError);
        }
        for i in 0..len {
            // A panic in `init` aborts the kernel: no half-filled table is
            // ever dropped.
            // SAFETY: `i < len`: slot `i` lies inside the aligned allocation
            // (checked above) and is written once, holding no T yet.
            unsafe { ptr.as_ptr().add(i).write(init(i)) };
        }
        // INVARIANT: all `len` slots are initialised; the memory is ours.
        Ok(KSlots {
            ptr,
            len,
            _owns: PhantomData,
        })
    }
}

impl<T> Deref for KSlots<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: type invariant: `len` initialised Ts owned by us.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> DerefMut for KSlots<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in deref, with exclusive access through &mut self.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> Drop for KSlots<T> {
    fn drop(&mut self) {
        // SAFETY: the `len` Ts are initialised and ours; after they are
        // dropped the memory goes back to malloc(9) and is never used again.
        unsafe {
            core::ptr::drop_in_place(core::ptr::slice_from_raw_parts_mut(
                self.ptr.as_ptr(),
                self.len,
            ));
            ffi::rzil_shim_free(self.ptr.as_ptr().cast());
        }
    }
}

impl<T> core::fmt::Debug for KSlots<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KSlots").field("len", &self.len).finish()
    }
}

/// Size and alignment of a type, for [`zone_sizes`].
pub const fn layout_of<T>() -> (usize, usize) {
    (size_of::<T>(), align_of::<T>())
}
