#!/usr/bin/env python3
"""Shows that scripts/kmod-check.py can fail: feeds it objects that break
each rule and asserts it rejects them for the right reasons, and that the
real kmod/rzil.ko passes.

  1. a C object built for x86_64-linux-gnu with the default user-space
     flags (SSE floating point, red zone, -fPIC GOT relocations, printf,
     a 20 KB stack frame, a constructor, thread-local data): must fail elf, sets, metadata, relocs, simd,
     redzone, stack and symbols;
  2. a Rust object built by the host rustc for x86_64-unknown-linux-gnu
     (the stock target, whose float code uses SSE): must fail simd;
  3. copies of rzil.ko with one defect each (OS/ABI byte cleared; one
     relocation turned into R_X86_64_32; a kernel symbol defined locally):
     must fail exactly elf, relocs and symbols respectively;
  4. a FreeBSD kernel-flags C object whose entry point chains two frames
     each under the frame limit into a chain over the chain limit: stack;
  5. an allowlist naming a symbol no FreeBSD header declares: symbols;
  6. FreeBSD kernel-flags C objects with one lifetime defect each: a
     bio_done that allocates a bio and enqueues its task after dropping
     its mutex (completion); a module event handler freeing a counter(9)
     (lifecycle); an attach ignoring taskqueue_start_threads' result
     beside a checked copyin (errors, naming only the former);
  7. rzil.ko itself: must pass every check.

Needs `make kmod` first (rzil.ko and the cached headers).  Python 3
standard library only; prints 'N passed, N failed'.
"""

import importlib.util
import io
import os
import struct
import subprocess
import sys
import tempfile
from contextlib import redirect_stdout

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KO = os.path.join(REPO, "kmod", "rzil.ko")
HEADERS = [os.path.join(REPO, ".cache", "kmod", "freebsd-include", d)
           for d in ("generic-freebsd", "x86_64-freebsd-none")]
WAIVERS = os.path.join(REPO, "kmod", "stack-frame.waivers")

spec = importlib.util.spec_from_file_location(
    "kmod_check", os.path.join(REPO, "scripts", "kmod-check.py"))
kc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(kc)

USER_C = r"""
extern int printf(const char *, ...);
int counter;
double scale(double x, double y) { return x * y + 1.5; }
long leaf(long a) {
	volatile long buf[4];
	buf[0] = a; buf[1] = a + 1; buf[2] = a + 2; buf[3] = a + 3;
	return buf[0] + buf[3];
}
int *counter_addr(void) { return &counter; }
int big(int i) {
	volatile char b[20000];
	b[i] = 1;
	return b[i / 2];
}
int hello(void) { return printf("hello %d\n", counter); }
_Thread_local int per_thread;
__attribute__((constructor)) static void setup(void) { per_thread = 1; }
"""

# Two frames under the 8 KiB frame limit whose chain is over 12 KiB.
CHAIN_C = r"""
int leaf7k(volatile char *p);
__attribute__((noinline)) int leaf7k(volatile char *p) {
	volatile char b[7000];
	b[p[0]] = 1;
	return b[p[1]];
}
int rzil_ioctl(int i);
int rzil_ioctl(int i) {
	volatile char b[6500];
	b[i] = 2;
	return leaf7k(b);
}
"""

# What rzil_bio_done looked like before the enqueue moved under the lock,
# plus an allocation: both completion rules broken.
COMPLETION_C = r"""
struct taskqueue;
struct task;
void __mtx_lock_flags(volatile unsigned long *c, int opts, const char *f, int l);
void __mtx_unlock_flags(volatile unsigned long *c, int opts, const char *f, int l);
int taskqueue_enqueue(struct taskqueue *tq, struct task *t);
void *g_alloc_bio(void);
struct softc { volatile unsigned long m; struct taskqueue *tq; struct task *t; void *b; };
void rzil_bio_done(struct softc *sc);
void rzil_bio_done(struct softc *sc) {
	__mtx_lock_flags(&sc->m, 0, 0, 0);
	sc->b = g_alloc_bio();
	__mtx_unlock_flags(&sc->m, 0, 0, 0);
	taskqueue_enqueue(sc->tq, sc->t);
}
"""

# A module event handler freeing a counter the static sysctls still read.
LIFECYCLE_C = r"""
typedef unsigned long *counter_u64_t;
void counter_u64_free(counter_u64_t c);
counter_u64_t rzil_flushes;
int rzil_modevent(void *mod, int type, void *data);
int rzil_modevent(void *mod, int type, void *data) {
	if (type == 1)
		counter_u64_free(rzil_flushes);
	return (0);
}
"""

# One ignored result (taskqueue_start_threads) beside a checked one.
ERRORS_C = r"""
struct taskqueue;
int taskqueue_start_threads(struct taskqueue **tqp, int count, int pri,
    const char *name, ...);
int copyin(const void *uaddr, void *kaddr, unsigned long len);
struct taskqueue *tq;
int attach(void);
int attach(void) {
	taskqueue_start_threads(&tq, 1, 0, "io");
	return (0);
}
int append(const void *u, void *k);
int append(const void *u, void *k) {
	if (copyin(u, k, 8) != 0)
		return (14);
	return (0);
}
"""

USER_RS = r"""
#![no_std]
#[no_mangle]
pub extern "C" fn mix(a: f64, b: f64) -> f64 { (a * 0.5 + b) / (a + 1.0) }
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! { loop {} }
"""


def run_check(path, extra=()):
    """kmod-check's failed checks for `path`."""
    out = io.StringIO()
    with redirect_stdout(out):
        kc.main([path, "--quiet", "--stack-waivers", WAIVERS]
                + [a for h in HEADERS for a in ("--headers", h)] + list(extra))
    return {line.split()[1].rstrip(":") for line in out.getvalue().splitlines()
            if line.startswith("FAIL ")}, out.getvalue()


def mutate(src, dst, fn):
    data = bytearray(open(src, "rb").read())
    fn(data)
    open(dst, "wb").write(data)


def clear_osabi(data):
    data[7] = 0


def first_alloc_rela(data):
    elf = kc.Elf(bytes(data))
    for sec, rows in elf.reloc_sections:
        target = elf.sections[sec["info"]]
        if sec["type"] == kc.SHT_RELA and target["flags"] & kc.SHF_ALLOC:
            for j, (_off, rtype, _sym, _add) in enumerate(rows):
                if rtype == 11:  # R_X86_64_32S -> R_X86_64_32
                    return sec["offset"] + j * 24 + 8
    raise SystemExit("no R_X86_64_32S in an allocated section")


def to_r32(data):
    at = first_alloc_rela(data)
    info = struct.unpack_from("<Q", data, at)[0]
    struct.pack_into("<Q", data, at, (info & ~0xFFFFFFFF) | 10)


def define_log(data):
    # Turn the undefined `log` into a defined local symbol: what linking
    # compiler_builtins' libm `log` against the shim would have done.
    elf = kc.Elf(bytes(data))
    symtab = elf.sections[elf.symtab_index]
    text = elf.section(".text")["index"]
    for j, sym in enumerate(elf.symbols):
        if sym["name"] == "log":
            struct.pack_into("<H", data, symtab["offset"] + j * 24 + 6, text)
            return
    raise SystemExit("rzil.ko does not reference log")


def main():
    results = []

    def expect(label, got, want, output):
        ok = got == want
        results.append(ok)
        print("%s: %s (failed checks: %s; expected: %s)" % (
            "ok" if ok else "WRONG", label, " ".join(sorted(got)) or "none",
            " ".join(sorted(want)) or "none"))
        if not ok:
            print(output)

    with tempfile.TemporaryDirectory() as tmp:
        c_src = os.path.join(tmp, "user.c")
        c_obj = os.path.join(tmp, "user.o")
        open(c_src, "w").write(USER_C)
        subprocess.run(["clang-19", "-target", "x86_64-linux-gnu", "-O1",
                        "-fPIC", "-c", c_src, "-o", c_obj], check=True)
        got, out = run_check(c_obj)
        if "section .init_array" not in out or "section .tbss" not in out:
            got = got - {"elf"}  # the constructor and TLS went unnoticed
        expect("linux-gnu C object (SSE, red zone, GOT, printf, 20 KB frame, "
               "constructor, TLS)",
               got, {"elf", "sets", "metadata", "relocs", "simd", "redzone",
                     "stack", "symbols"}, out)

        chain_src = os.path.join(tmp, "chain.c")
        chain_obj = os.path.join(tmp, "chain.o")
        open(chain_src, "w").write(CHAIN_C)
        subprocess.run(["clang-19", "-target", "x86_64-unknown-freebsd15.0",
                        "-O1", "-mno-red-zone", "-mno-sse", "-msoft-float",
                        "-mcmodel=kernel", "-ffreestanding", "-c", chain_src,
                        "-o", chain_obj], check=True)
        got, out = run_check(chain_obj)
        chain_failed = "stack" in got and "call chain" in out and \
            "allocates" not in out
        expect("6.5 KB + 7 KB frames chained from an entry point",
               got & {"stack"} if chain_failed else set(), {"stack"}, out)

        for label, src, check, must, must_not in (
                ("bio_done allocating and enqueueing after its unlock",
                 COMPLETION_C, "completion",
                 ("reaches g_alloc_bio", "calls taskqueue_enqueue after"), ()),
                ("MOD_UNLOAD freeing a counter(9) behind a sysctl",
                 LIFECYCLE_C, "lifecycle",
                 ("on a path from a kernel entry point",
                  "from no SYSUNINIT"), ()),
                ("taskqueue_start_threads' result ignored",
                 ERRORS_C, "errors",
                 ("attach ignores the result of taskqueue_start_threads",),
                 ("copyin",))):
            src_path = os.path.join(tmp, check + ".c")
            obj_path = os.path.join(tmp, check + ".o")
            open(src_path, "w").write(src)
            subprocess.run(["clang-19", "-target", "x86_64-unknown-freebsd15.0",
                            "-O2", "-mno-red-zone", "-mno-sse", "-msoft-float",
                            "-mcmodel=kernel", "-ffreestanding", "-c", src_path,
                            "-o", obj_path], check=True)
            got, out = run_check(obj_path)
            fails = [line for line in out.splitlines()
                     if line.startswith("FAIL %s:" % check)]
            right = all(any(m in f for f in fails) for m in must) and \
                not any(m in f for f in fails for m in must_not)
            expect(label, got & {check} if right else set(), {check}, out)

        rs_src = os.path.join(tmp, "user.rs")
        rs_obj = os.path.join(tmp, "user_rs.o")
        open(rs_src, "w").write(USER_RS)
        env = dict(os.environ)
        env.pop("RUSTC_BOOTSTRAP", None)
        subprocess.run(["rustc", "+stable", "--edition", "2021",
                        "--target", "x86_64-unknown-linux-gnu",
                        "--crate-type", "lib", "--emit", "obj", "-O",
                        "-C", "panic=abort", "-o", rs_obj, rs_src],
                       check=True, env=env)
        got, out = run_check(rs_obj)
        expect("linux-gnu Rust object (stock target, SSE floats)",
               got & {"simd"}, {"simd"}, out)

        for label, fn, want in (
                ("rzil.ko with OS/ABI cleared", clear_osabi, {"elf"}),
                ("rzil.ko with one R_X86_64_32 relocation", to_r32, {"relocs"}),
                ("rzil.ko defining log(9) itself", define_log, {"symbols"})):
            path = os.path.join(tmp, "mut.ko")
            mutate(KO, path, fn)
            got, out = run_check(path)
            expect(label, got, want, out)

        allow = os.path.join(tmp, "bogus.allow")
        with open(allow, "w") as f:
            f.write(open(os.path.join(REPO, "kmod", "kernel-symbols.allow")).read())
            f.write("g_rzil_no_such_kpi\n")
        got, out = run_check(KO, ["--allowlist", allow])
        expect("allowlist naming a symbol no FreeBSD header declares", got,
               {"symbols"}, out)

        got, out = run_check(KO)
        expect("rzil.ko as built", got, set(), out)

    passed = sum(results)
    print("kmod-check-selftest: %d passed, %d failed" % (passed,
                                                         len(results) - passed))
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
