//! The panic handler: a Rust panic in the kernel is a kernel panic(9) with
//! the message, so that the dump and kgdb show where it came from. Nothing
//! unwinds (the target is panic = abort).

use crate::ffi;
use core::fmt::{self, Write};

/// Longest panic message handed to panic(9), in bytes; longer ones are cut.
const PANIC_MSG_BYTES_MAX: usize = 192;

/// A fixed buffer that formats into the stack, never allocating.
struct MsgBuf {
    bytes: [u8; PANIC_MSG_BYTES_MAX],
    len: usize,
}

impl Write for MsgBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = PANIC_MSG_BYTES_MAX - self.len;
        let n = s.len().min(room);
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut msg = MsgBuf {
        bytes: [0; PANIC_MSG_BYTES_MAX],
        len: 0,
    };
    // A formatting error only truncates the message; the panic goes on.
    let _ = match info.location() {
        Some(loc) => write!(msg, "{} at {}:{}", info.message(), loc.file(), loc.line()),
        None => write!(msg, "{}", info.message()),
    };
    // SAFETY: `msg.bytes[..msg.len]` is initialised memory owned by this
    // frame, and rzil_shim_panic reads exactly `len` bytes of it (it prints
    // with "%.*s"); it does not return.
    unsafe { ffi::rzil_shim_panic(msg.bytes.as_ptr().cast(), msg.len) }
}
