#!/usr/bin/env python3
"""Structural checks of a FreeBSD/amd64 kernel module (kmod/rzil.ko).

No FreeBSD kernel can be booted where `make test` runs, so this script
checks what the FreeBSD kernel linker (sys/kern/link_elf_obj.c with
sys/amd64/amd64/elf_machdep.c) and kernel code generation require:

  elf        ELF64, little-endian, x86-64, ET_REL, OS/ABI FreeBSD; no
             constructor tables (.init_array/.ctors: the kernel linker runs
             none), no thread-local data, no GOT/PLT
  sets       the linker sets a module needs (set_modmetadata_set,
             set_sysinit_set, set_sysuninit_set, set_sysctl_set, the SDT
             sets), each a whole number of relocated pointers
  metadata   module metadata: MDT_MODULE named as expected with an event
             handler, MDT_VERSION, MDT_DEPEND on "kernel"
  relocs     only relocation types elf_reloc_internal() applies to an
             allocated section: R_X86_64_NONE, 64, PC32, PLT32, 32S (not
             R_X86_64_32, not GOTPCREL/GOTPCRELX/REX_GOTPCRELX: a module
             holding one fails kldload with "unexpected relocation type")
  simd       no SSE/AVX/MMX/x87 instruction or register (the kernel does not
             save FPU state for kernel code), from llvm-objdump's listing
  redzone    no memory access below %rsp (amd64 kernel code runs without a
             red zone: an interrupt would overwrite it)
  stack      no stack frame above --stack-frame-bytes-max (kernel stacks are
             16 KiB on amd64), and no call chain from an entry point the
             kernel calls (ioctl, module event, taskqueue, GEOM callbacks)
             deeper than --stack-chain-bytes-max, following direct calls
             inside the module; unless waived by name in --stack-waivers
  symbols    every undefined symbol is on the allowlist of kernel symbols,
             each allowlisted symbol is declared in the FreeBSD headers, and
             the module defines none of them itself (a local definition would
             silently replace the kernel's, as libm's `log` would log(9))
  completion a GEOM completion callback (bio_done, run by the g_up thread,
             which must never sleep) reaches no kernel function that may
             sleep, and calls nothing once it has released its last mutex
             (from then on a detach may free the softc and its taskqueue)
  lifecycle  counter(9) counters are freed only from a SYSUNINIT, never on
             a path from a kernel entry point (MOD_UNLOAD included): the
             kernel linker unregisters the static sysctls that read them
             only after the unload event returned
  errors     the result of each kernel call that can fail and leaves
             nothing usable behind when it does (taskqueue_start_threads,
             g_attach, make_dev_s, copyin) is looked at before it is lost

It ends with a size report.  Exit status 0 when every check passes, 1
otherwise; each failure is printed as "FAIL <check>: <why>".

Usage: kmod-check.py [options] MODULE
Python 3 standard library only.
"""

import argparse
import collections
import os
import re
import struct
import subprocess
import sys

# --- constants from the ELF and FreeBSD ABIs -------------------------------
ELFCLASS64 = 2
ELFDATA2LSB = 1
ELFOSABI_FREEBSD = 9
ET_REL = 1
EM_X86_64 = 62
SHT_SYMTAB = 2
SHT_RELA = 4
SHT_NOBITS = 8
SHT_REL = 9
SHF_ALLOC = 0x2
SHF_EXECINSTR = 0x4
SHF_TLS = 0x400
# Sections the kernel linker would load but never act on: constructors it
# does not run, thread-local storage the kernel does not have, dynamic
# linking tables it does not fill.
FORBIDDEN_SECTIONS = re.compile(
    r"^\.(?:init_array|fini_array|preinit_array|ctors|dtors|init|fini|"
    r"tdata|tbss|got|got\.plt|plt|dynamic|interp)(?:\.|$)")
SHN_UNDEF = 0
STB_LOCAL = 0
STT_SECTION = 3
STT_FILE = 4

R_X86_64 = {
    0: "R_X86_64_NONE", 1: "R_X86_64_64", 2: "R_X86_64_PC32",
    3: "R_X86_64_GOT32", 4: "R_X86_64_PLT32", 5: "R_X86_64_COPY",
    6: "R_X86_64_GLOB_DAT", 7: "R_X86_64_JUMP_SLOT", 8: "R_X86_64_RELATIVE",
    9: "R_X86_64_GOTPCREL", 10: "R_X86_64_32", 11: "R_X86_64_32S",
    12: "R_X86_64_16", 13: "R_X86_64_PC16", 14: "R_X86_64_8",
    15: "R_X86_64_PC8", 24: "R_X86_64_PC64", 26: "R_X86_64_GOTPC32",
    37: "R_X86_64_IRELATIVE", 41: "R_X86_64_GOTPCRELX",
    42: "R_X86_64_REX_GOTPCRELX",
}
R_X86_64_64 = 1
# What elf_reloc_internal() (sys/amd64/amd64/elf_machdep.c) applies to the
# sections of an ET_REL module.  GLOB_DAT/JMP_SLOT/RELATIVE/IRELATIVE are
# dynamic relocations that never belong in a relocatable object.
KERNEL_RELOCS = {0, 1, 2, 4, 11}

# sys/module.h: struct mod_metadata { int md_version; int md_type;
# const void *md_data; const char *md_cval; }
MDT_DEPEND, MDT_MODULE, MDT_VERSION = 1, 2, 3
MOD_METADATA_BYTES = 24
POINTER_BYTES = 8

REQUIRED_SETS = (
    "set_modmetadata_set",
    "set_sysinit_set",
    "set_sysuninit_set",
    "set_sysctl_set",
    "set_sdt_providers_set",
    "set_sdt_probes_set",
)

# amd64 KSTACK_PAGES is 4: 16 KiB for a whole call chain, interrupts
# included.  One frame may take at most half of it.
STACK_FRAME_BYTES_MAX_DEFAULT = 8192
# A whole chain inside the module may use 12 KiB: the rest is for the
# system call or taskqueue frames above it and kernel functions below it.
STACK_CHAIN_BYTES_MAX_DEFAULT = 12288
RETURN_ADDRESS_BYTES = 8
# Functions the kernel calls into the module through pointers.
ENTRY_POINTS = ("rzil_ioctl", "rzil_modevent", "rzil_done_task",
                "rzil_bio_done", "rzil_orphan", "rzil_sysctl_pct")
STACK_PROBE_STEP_BYTES = 0x1000
# GEOM completion callbacks (struct bio's bio_done), run by the g_up thread.
COMPLETION_CALLBACKS = ("rzil_bio_done",)
# Kernel functions that may sleep (or take a sleepable lock): never from a
# completion callback.  malloc/uma_zalloc_arg are listed whatever their
# flags: a completion has no business allocating.
SLEEPING_KPI = frozenset((
    "_sx_xlock", "_sx_slock", "sx_xlock_", "sx_slock_", "_sx_xlock_hard",
    "_cv_wait", "_cv_wait_sig", "_cv_wait_unlock", "_cv_timedwait_sbt",
    "_cv_timedwait_sig_sbt", "_sleep", "msleep_spin_sbt", "pause_sbt",
    "malloc", "uma_zalloc_arg", "g_alloc_bio", "g_access", "g_attach",
    "g_waitfor_event", "g_modevent", "taskqueue_drain", "taskqueue_free",
    "taskqueue_create", "taskqueue_start_threads", "destroy_dev",
    "make_dev_s", "copyin", "copyout", "counter_u64_alloc", "kthread_add",
))
MTX_UNLOCK_KPI = ("__mtx_unlock_flags", "__mtx_unlock_sleep")
# Freed only from a SYSUNINIT (see the lifecycle check).
SYSUNINIT_ONLY_KPI = ("counter_u64_free",)
# struct sysinit (sys/kernel.h, FreeBSD 15): subsystem and order (two
# 4-byte enums), STAILQ_ENTRY next (a pointer), then sysinit_cfunc_t func.
SYSINIT_FUNC_OFFSET = 16
# Kernel calls whose failure leaves nothing usable: their result (%eax)
# must be read before it is overwritten or another call clobbers it.
MUST_CHECK_KPI = ("taskqueue_start_threads", "g_attach", "make_dev_s",
                  "copyin")
RESULT_REG = re.compile(r"%(?:rax|eax|ax|al)\b")
# Instructions that only write their last operand.
WRITE_ONLY_MNEMONIC = re.compile(r"^(?:mov\w*|lea\w*|set\w+|pop\w*)$")
RESULT_SCAN_INSNS_MAX = 64

SIMD_REGISTER = re.compile(r"%(?:[xyz]mm\d+|mm\d|st(?:\(\d\))?|k[0-7])\b")
SIMD_MNEMONIC = re.compile(
    r"^(?:v\w+|(?:movap|movup|movlp|movhp|movs[sd]|movdq[au]|movq2dq|"
    r"movnt\w*|pxor|por|pand|pandn|padd\w|psub\w|pmul\w+|pshuf\w+|"
    r"punpck\w+|pcmp\w+|pmov\w+|xorp[sd]|andp[sd]|orp[sd]|addp[sd]|"
    r"adds[sd]|subs[sd]|muls[sd]|divs[sd]|sqrt\w+|cvt\w+|comis[sd]|"
    r"ucomis[sd]|ldmxcsr|stmxcsr|fxsave\w*|fxrstor\w*|xsave\w*|xrstor\w*|"
    r"emms|fld\w*|fst\w*|fild\w*|fist\w*|fadd\w*|fsub\w*|fmul\w*|fdiv\w*|"
    r"fxch|fcom\w*|finit|fninit|fwait|aes\w+|pclmul\w+|sha\w+msg\w*)$)")
RSP_BELOW = re.compile(r"-0x[0-9a-f]+\(%rsp\)")


class Report:
    """Collects failures per check and notes for the summary."""

    def __init__(self):
        self.failures = collections.OrderedDict()
        self.notes = []

    def fail(self, check, why):
        self.failures.setdefault(check, []).append(why)

    def note(self, text):
        self.notes.append(text)

    def failed_checks(self):
        return set(self.failures)


class Elf:
    """Just enough of an ELF64 little-endian relocatable file."""

    def __init__(self, data):
        self.data = data
        if len(data) < 64 or data[:4] != b"\x7fELF":
            raise ValueError("not an ELF file")
        self.ei_class, self.ei_data, self.ei_osabi = data[4], data[5], data[7]
        if self.ei_class != ELFCLASS64 or self.ei_data != ELFDATA2LSB:
            raise ValueError("not ELF64 little-endian")
        (self.e_type, self.e_machine, _v, _entry, _phoff, shoff, _flags,
         _ehsize, _phentsize, _phnum, shentsize, shnum,
         shstrndx) = struct.unpack_from("<HHIQQQIHHHHHH", data, 16)
        self.sections = []
        for i in range(shnum):
            (name, stype, flags, addr, off, size, link, info, align,
             entsize) = struct.unpack_from("<IIQQQQIIQQ", data,
                                           shoff + i * shentsize)
            self.sections.append(dict(index=i, name_off=name, type=stype,
                                      flags=flags, offset=off, size=size,
                                      link=link, info=info, align=align,
                                      entsize=entsize))
        strtab = self.sections[shstrndx]
        for s in self.sections:
            s["name"] = self._str(strtab, s["name_off"])
        self.symbols = []
        self.symtab_index = None
        for s in self.sections:
            if s["type"] == SHT_SYMTAB:
                self.symtab_index = s["index"]
                names = self.sections[s["link"]]
                for j in range(s["size"] // 24):
                    (nm, info, _other, shndx, value,
                     size) = struct.unpack_from("<IBBHQQ", data,
                                                s["offset"] + j * 24)
                    self.symbols.append(dict(
                        name=self._str(names, nm), bind=info >> 4,
                        type=info & 0xF, shndx=shndx, value=value,
                        size=size))
        # relocs[target section index] = {offset: (type, sym index, addend)}
        self.relocs = collections.defaultdict(dict)
        self.reloc_sections = []
        for s in self.sections:
            if s["type"] not in (SHT_RELA, SHT_REL):
                continue
            entry = 24 if s["type"] == SHT_RELA else 16
            rows = []
            for j in range(s["size"] // entry):
                base = s["offset"] + j * entry
                if s["type"] == SHT_RELA:
                    off, info, addend = struct.unpack_from("<QQq", data, base)
                else:
                    off, info = struct.unpack_from("<QQ", data, base)
                    addend = None
                rows.append((off, info & 0xFFFFFFFF, info >> 32, addend))
                self.relocs[s["info"]][off] = (info & 0xFFFFFFFF, info >> 32,
                                               addend)
            self.reloc_sections.append((s, rows))

    def _str(self, sec, off):
        start = sec["offset"] + off
        end = self.data.index(b"\0", start)
        return self.data[start:end].decode("utf-8", "replace")

    def section(self, name):
        for s in self.sections:
            if s["name"] == name:
                return s
        return None

    def bytes_of(self, sec, off, n):
        if sec["type"] == SHT_NOBITS:
            return b"\0" * n
        return self.data[sec["offset"] + off:sec["offset"] + off + n]

    def resolve(self, sec_index, off):
        """Where the pointer stored at (section, offset) points: (section
        dict, offset) for a defined target, or (None, symbol name)."""
        rel = self.relocs.get(sec_index, {}).get(off)
        if rel is None or rel[0] != R_X86_64_64:
            return None
        _rtype, symi, addend = rel
        sym = self.symbols[symi]
        if sym["shndx"] == SHN_UNDEF:
            return (None, sym["name"])
        return (self.sections[sym["shndx"]], sym["value"] + (addend or 0))

    def cstring(self, where):
        if where is None or where[0] is None:
            return None
        sec, off = where
        raw = self.bytes_of(sec, off, 256)
        return raw.split(b"\0", 1)[0].decode("utf-8", "replace")

    def symbol_at(self, where):
        if where is None:
            return None
        sec, off = where
        if sec is None:
            return off
        for sym in self.symbols:
            if (sym["shndx"] == sec["index"] and sym["value"] == off
                    and sym["type"] not in (STT_SECTION, STT_FILE)
                    and sym["name"]):
                return sym["name"]
        return "%s+%#x" % (sec["name"], off)


def check_elf(elf, rep):
    if elf.ei_osabi != ELFOSABI_FREEBSD:
        rep.fail("elf", "OS/ABI is %d, not FreeBSD (%d)"
                 % (elf.ei_osabi, ELFOSABI_FREEBSD))
    if elf.e_type != ET_REL:
        rep.fail("elf", "e_type is %d, not ET_REL: amd64 modules are "
                 "relocatable objects" % elf.e_type)
    if elf.e_machine != EM_X86_64:
        rep.fail("elf", "e_machine is %d, not x86-64" % elf.e_machine)
    for s in elf.sections:
        if FORBIDDEN_SECTIONS.match(s["name"]) or s["flags"] & SHF_TLS:
            rep.fail("elf", "section %s: constructors, TLS and dynamic "
                     "linking tables have no meaning in a kernel module"
                     % s["name"])


def check_sets(elf, rep):
    for name in REQUIRED_SETS:
        sec = elf.section(name)
        if sec is None:
            rep.fail("sets", "linker set %s missing" % name)
            continue
        if sec["size"] == 0 or sec["size"] % POINTER_BYTES:
            rep.fail("sets", "%s is %d bytes, not a whole number of "
                     "pointers" % (name, sec["size"]))
            continue
        for off in range(0, sec["size"], POINTER_BYTES):
            if elf.resolve(sec["index"], off) is None:
                rep.fail("sets", "%s entry %d has no R_X86_64_64 relocation"
                         % (name, off // POINTER_BYTES))
    # Every __start_/__stop_ reference must name a set that exists here or
    # in the kernel (set_pcpu lives in the kernel; the kernel linker
    # resolves a module's own sets from its sections).
    for sym in elf.symbols:
        m = re.match(r"__(?:start|stop)_(set_\w+)$", sym["name"])
        if m and sym["shndx"] == SHN_UNDEF and elf.section(m.group(1)) is None:
            rep.note("%s refers to a kernel linker set" % sym["name"])


def check_metadata(elf, rep, module, min_version):
    sec = elf.section("set_modmetadata_set")
    if sec is None:
        rep.fail("metadata", "no set_modmetadata_set")
        return {}
    found = collections.defaultdict(list)
    for off in range(0, sec["size"], POINTER_BYTES):
        target = elf.resolve(sec["index"], off)
        if target is None or target[0] is None:
            rep.fail("metadata", "metadata entry %d does not point into the "
                     "module" % (off // POINTER_BYTES))
            continue
        msec, moff = target
        version, mtype = struct.unpack("<ii", elf.bytes_of(msec, moff, 8))
        data = elf.resolve(msec["index"], moff + 8)
        cval = elf.cstring(elf.resolve(msec["index"], moff + 16))
        found[mtype].append((version, cval, data))
    modules = found.get(MDT_MODULE, [])
    if not modules:
        rep.fail("metadata", "no MDT_MODULE entry (DECLARE_MODULE missing)")
    for _v, cval, data in modules:
        if cval != module:
            rep.fail("metadata", "MDT_MODULE is %r, expected %r"
                     % (cval, module))
        if data is None or data[0] is None:
            rep.fail("metadata", "MDT_MODULE %r has no moduledata" % cval)
            continue
        name = elf.cstring(elf.resolve(data[0]["index"], data[1]))
        handler = elf.symbol_at(elf.resolve(data[0]["index"],
                                            data[1] + POINTER_BYTES))
        if name != module:
            rep.fail("metadata", "moduledata name is %r" % name)
        if handler is None:
            rep.fail("metadata", "module %r has no event handler" % name)
        rep.note("module %r, event handler %s" % (name, handler))
    versions = found.get(MDT_VERSION, [])
    if not versions:
        rep.fail("metadata", "no MDT_VERSION entry (MODULE_VERSION missing)")
    for _v, cval, data in versions:
        if data is None or data[0] is None:
            rep.fail("metadata", "MDT_VERSION %r has no mod_version" % cval)
            continue
        (ver,) = struct.unpack("<i", elf.bytes_of(data[0], data[1], 4))
        if cval != module or ver < min_version:
            rep.fail("metadata", "MODULE_VERSION(%s, %d), expected (%s, >= %d)"
                     % (cval, ver, module, min_version))
        rep.note("MODULE_VERSION(%s, %d)" % (cval, ver))
    deps = {}
    for _v, cval, data in found.get(MDT_DEPEND, []):
        if data is None or data[0] is None:
            rep.fail("metadata", "MDT_DEPEND %r has no mod_depend" % cval)
            continue
        deps[cval] = struct.unpack("<iii", elf.bytes_of(data[0], data[1], 12))
    if "kernel" not in deps:
        rep.fail("metadata", "no MDT_DEPEND on 'kernel' (DECLARE_MODULE "
                 "records the kernel version it was built for)")
    for name, (lo, pref, hi) in sorted(deps.items()):
        if not lo <= pref <= hi:
            rep.fail("metadata", "dependency %s has range %d <= %d <= %d"
                     % (name, lo, pref, hi))
        rep.note("MODULE_DEPEND(%s, %d, %d, %d)" % (name, lo, pref, hi))
    return found


def check_relocs(elf, rep):
    counts = collections.Counter()
    for sec, rows in elf.reloc_sections:
        target = elf.sections[sec["info"]]
        if not target["flags"] & SHF_ALLOC:
            continue  # link_elf_obj.c ignores relocations of debug sections
        for off, rtype, symi, _addend in rows:
            name = R_X86_64.get(rtype, "type %d" % rtype)
            counts[name] += 1
            if rtype not in KERNEL_RELOCS:
                sym = elf.symbols[symi]["name"] if symi < len(elf.symbols) else "?"
                rep.fail("relocs", "%s at %s+%#x (symbol %s): the kernel "
                         "linker does not apply it" % (name, target["name"],
                                                       off, sym or "-"))
    return counts


def disassemble(path, objdump):
    """{function: [(address, mnemonic, operands, relocation symbol)]} from
    llvm-objdump -dr (the symbol is that of a relocation applied inside the
    instruction, if any)."""
    out = subprocess.run([objdump, "-dr", "-C", "--no-show-raw-insn", path],
                         check=True, capture_output=True, text=True).stdout
    funcs = collections.OrderedDict()
    current = None
    for line in out.splitlines():
        m = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if m:
            current = m.group(1)
            funcs.setdefault(current, [])
            continue
        m = re.match(r"^\s*[0-9a-f]+:\s+R_X86_64_\w+\s+(\S+?)(?:[-+]0x[0-9a-f]+)?$",
                     line)
        if m and current is not None and funcs[current]:
            addr, mnem, ops, _ = funcs[current][-1]
            funcs[current][-1] = (addr, mnem, ops, m.group(1))
            continue
        m = re.match(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$", line)
        if m and current is not None:
            funcs[current].append((m.group(1), m.group(2),
                                   m.group(3).split("#")[0].strip(), None))
    return funcs


def check_code(funcs, rep):
    simd = redzone = 0
    for fn, insns in funcs.items():
        for addr, mnem, ops, _rel in insns:
            if SIMD_MNEMONIC.match(mnem) or SIMD_REGISTER.search(ops):
                simd += 1
                if simd <= 10:
                    rep.fail("simd", "%s+%s: %s %s" % (fn, addr, mnem, ops))
            if mnem.startswith("lea") or mnem.startswith("nop"):
                continue
            if RSP_BELOW.search(ops):
                redzone += 1
                if redzone <= 10:
                    rep.fail("redzone", "%s+%s: %s %s (below %%rsp)"
                             % (fn, addr, mnem, ops))
    if simd > 10:
        rep.fail("simd", "... %d SIMD/FPU instructions in all" % simd)
    if redzone > 10:
        rep.fail("redzone", "... %d red-zone accesses in all" % redzone)


def frame_bytes(insns):
    """Stack bytes a function's prologue allocates, stack probes included:
    `sub $N,%rsp` steps (an inline probe loop steps by 4 KiB down to
    %rsp - M computed in %r11, then subtracts the rest)."""
    probe_target = 0
    total = 0
    for _addr, mnem, ops, _rel in insns[:64]:
        m = re.match(r"\$0x([0-9a-f]+), %(r11|rsp)$", ops)
        if not m or not mnem.startswith("sub"):
            continue
        n = int(m.group(1), 16)
        if m.group(2) == "r11":
            probe_target = n
        elif n == STACK_PROBE_STEP_BYTES and probe_target:
            continue  # one step of the probe loop, counted in probe_target
        else:
            total += n
    return total + probe_target


def pushes_bytes(insns):
    n = 0
    for _addr, mnem, _ops, _rel in insns[:16]:
        if mnem.startswith("push"):
            n += 1
    return n * POINTER_BYTES


def call_graph(funcs):
    """Direct calls and tail jumps between the module's functions:
    {caller: {callee}}. A call inside one section is already resolved in
    the listing (`call 0x... <name>`); one across sections carries an
    R_X86_64_PLT32 relocation naming the callee. Calls through pointers
    are not followed."""
    edges = collections.defaultdict(set)
    for f, insns in funcs.items():
        for _addr, mnem, ops, rel in insns:
            if not (mnem.startswith("call") or mnem.startswith("jmp")):
                continue
            m = re.search(r"<(.+)>$", ops)
            inner = m.group(1) if m else None
            if inner and re.search(r"\+0x[0-9a-f]+$", inner):
                inner = None  # a jump inside a function
            target = rel if rel in funcs else inner
            if target in funcs and target != f:
                edges[f].add(target)
    return edges


def check_chains(funcs, rep, limit, waivers, budgets):
    edges = call_graph(funcs)
    own = {f: frame_bytes(i) + pushes_bytes(i) + RETURN_ADDRESS_BYTES
           for f, i in funcs.items()}
    memo = {}

    def deepest(f, stack):
        if f in memo:
            return memo[f]
        if f in stack:
            rep.note("recursion through %s: its depth is not bounded by the "
                     "check" % short(f))
            return (0, [])
        best = (0, [])
        for c in edges.get(f, ()):
            d = deepest(c, stack | {f})
            if d[0] > best[0]:
                best = d
        memo[f] = (own.get(f, 0) + best[0], [f] + best[1])
        return memo[f]

    chains = []
    for entry in ENTRY_POINTS:
        if entry not in funcs:
            continue
        depth, path = deepest(entry, frozenset())
        chains.append((depth, entry, path))
        entry_limit = budgets.get(entry, limit)
        if depth <= entry_limit:
            continue
        waived = [w for w in waivers if any(w[0] in f for f in path)]
        where = " -> ".join(short(f, 32) for f in path)
        if waived:
            rep.note("WAIVED call chain of %d bytes from %s: %s (%s)"
                     % (depth, entry, where, waived[0][1]))
        else:
            rep.fail("stack", "call chain of %d bytes from %s (limit %d): %s"
                     % (depth, entry, entry_limit, where))
    return chains


def check_stack(funcs, rep, limit, waivers):
    frames = sorted(((frame_bytes(i), f) for f, i in funcs.items()),
                    reverse=True)
    for size, fn in frames:
        if size <= limit:
            break
        waiver = next((w for w in waivers if w[0] in fn), None)
        if waiver:
            rep.note("WAIVED stack frame of %d bytes in %s: %s"
                     % (size, fn, waiver[1]))
        else:
            rep.fail("stack", "%s allocates a %d-byte stack frame (limit %d; "
                     "kernel stacks are 16 KiB)" % (fn, size, limit))
    return frames


def kernel_calls(insns, funcs):
    """[(index, kernel symbol)] of the calls and tail jumps in `insns`
    that leave the module (their relocation names an undefined symbol)."""
    out = []
    for i, (_addr, mnem, _ops, rel) in enumerate(insns):
        if (mnem.startswith("call") or mnem.startswith("jmp")) and rel \
                and rel not in funcs:
            out.append((i, rel))
    return out


def reachable(funcs, edges, start):
    """The module functions reachable from `start` by direct calls."""
    seen, todo = set(), [start]
    while todo:
        f = todo.pop()
        if f in seen or f not in funcs:
            continue
        seen.add(f)
        todo.extend(edges.get(f, ()))
    return seen


def calls_anything(insn, funcs):
    _addr, mnem, ops, rel = insn
    if mnem.startswith("call"):
        return True
    if not mnem.startswith("jmp"):
        return False
    if rel and rel not in funcs:
        return True  # a tail call into the kernel
    if rel in funcs:
        return True  # a tail call to a function in another section
    m = re.search(r"<(.+)>$", ops)
    # `<f+0x..>` is a jump inside a function; `<g>` a tail call to g.
    return bool(m) and not re.search(r"\+0x[0-9a-f]+$", m.group(1))


def check_completion(funcs, rep):
    edges = call_graph(funcs)
    submits = any(sym == "g_io_request" for insns in funcs.values()
                  for _i, sym in kernel_calls(insns, funcs))
    for cb in COMPLETION_CALLBACKS:
        if cb not in funcs:
            if submits:
                rep.fail("completion", "the module submits bios but has no "
                         "completion callback named %s to check" % cb)
            continue
        for f in sorted(reachable(funcs, edges, cb)):
            for _i, sym in kernel_calls(funcs[f], funcs):
                if sym in SLEEPING_KPI:
                    rep.fail("completion", "%s (run by g_up, which must not "
                             "sleep) reaches %s in %s" % (cb, sym, short(f)))
        insns = funcs[cb]
        unlocks = [i for i, sym in kernel_calls(insns, funcs)
                   if sym in MTX_UNLOCK_KPI]
        if not unlocks:
            continue
        for insn in insns[unlocks[-1] + 1:]:
            if calls_anything(insn, funcs):
                rep.fail("completion", "%s calls %s after releasing its "
                         "last mutex: once the bio is queued and the lock "
                         "is free, detach may free the softc it uses"
                         % (cb, insn[3] or insn[2]))


def sysuninit_functions(elf):
    """Names of the functions the module's SYSUNINITs run."""
    names = set()
    sec = elf.section("set_sysuninit_set")
    if sec is None:
        return names
    for off in range(0, sec["size"], POINTER_BYTES):
        entry = elf.resolve(sec["index"], off)
        if entry is None or entry[0] is None:
            continue
        func = elf.resolve(entry[0]["index"], entry[1] + SYSINIT_FUNC_OFFSET)
        name = elf.symbol_at(func)
        if name:
            names.add(name)
    return names


def check_lifecycle(elf, funcs, rep):
    edges = call_graph(funcs)
    freeing = collections.defaultdict(set)
    for f, insns in funcs.items():
        for _i, sym in kernel_calls(insns, funcs):
            if sym in SYSUNINIT_ONLY_KPI:
                freeing[sym].add(f)
    if not freeing:
        return
    from_entry = set()
    for entry in ENTRY_POINTS:
        from_entry |= reachable(funcs, edges, entry)
    from_uninit = set()
    for f in sysuninit_functions(elf):
        from_uninit |= reachable(funcs, edges, f)
    for sym, fs in sorted(freeing.items()):
        for f in sorted(fs & from_entry):
            rep.fail("lifecycle", "%s calls %s on a path from a kernel entry "
                     "point: the static sysctls reading it stay registered "
                     "until after MOD_UNLOAD; free it from a SYSUNINIT"
                     % (short(f), sym))
        if not fs & from_uninit:
            rep.fail("lifecycle", "%s is called, but from no SYSUNINIT"
                     % sym)


def result_used(insns, start, funcs):
    """Whether the result of the call at insns[start] is read: follows the
    code after it (unconditional jumps inside the function included) until
    the first instruction naming %rax/%eax, another call, or a return."""
    by_addr = {a: i for i, (a, _m, _o, _r) in enumerate(insns)}
    i, steps = start + 1, 0
    while i < len(insns) and steps < RESULT_SCAN_INSNS_MAX:
        steps += 1
        _addr, mnem, ops, rel = insns[i]
        if mnem.startswith("ret"):
            return True  # handed to our caller untouched
        if mnem.startswith("jmp") and ops.startswith("*"):
            return True  # an indirect jump (a switch): cannot follow it
        if mnem.startswith("call") or (mnem.startswith("jmp") and rel):
            return False  # clobbered by another call
        operands = [o.strip() for o in re.split(r",(?![^(]*\))", ops)]
        named = [k for k, o in enumerate(operands) if RESULT_REG.search(o)]
        if named:
            last = len(operands) - 1
            same = len(operands) == 2 and operands[0] == operands[1]
            write_only = (named == [last] and WRITE_ONLY_MNEMONIC.match(mnem)) \
                or (same and re.match(r"^(?:xor|sub)", mnem))
            return not write_only
        m = re.match(r"^(?:0x)?([0-9a-f]+) <", ops)
        if mnem.startswith("jmp") and m and m.group(1) in by_addr:
            i = by_addr[m.group(1)]
            continue
        i += 1
    return True  # gave up: do not guess


def check_errors(funcs, rep):
    for f, insns in funcs.items():
        for i, sym in kernel_calls(insns, funcs):
            if sym not in MUST_CHECK_KPI or not insns[i][1].startswith("call"):
                continue
            if not result_used(insns, i, funcs):
                rep.fail("errors", "%s ignores the result of %s: a failure "
                         "goes unnoticed" % (short(f), sym))


def load_allowlist(path):
    entries = collections.OrderedDict()
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split(None, 1)
            entries[parts[0]] = (parts[1] if len(parts) > 1 else None, n)
    return entries


_HEADER_CACHE = {}


def header_texts(roots):
    key = tuple(roots)
    if key in _HEADER_CACHE:
        return _HEADER_CACHE[key]
    texts = []
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                if name.endswith(".h"):
                    with open(os.path.join(dirpath, name), "rb") as f:
                        texts.append(f.read().decode("latin-1"))
    _HEADER_CACHE[key] = "\n".join(texts)
    return _HEADER_CACHE[key]


def check_symbols(elf, rep, allow_path, header_roots):
    allow = load_allowlist(allow_path)
    undefined = sorted({s["name"] for s in elf.symbols
                        if s["shndx"] == SHN_UNDEF and s["name"]})
    defined = {s["name"] for s in elf.symbols
               if s["shndx"] != SHN_UNDEF and s["name"]
               and s["type"] not in (STT_SECTION, STT_FILE)}
    own_sets = {"__start_" + s["name"] for s in elf.sections} | \
               {"__stop_" + s["name"] for s in elf.sections}
    for name in undefined:
        if name in own_sets:
            continue  # the kernel linker resolves a module's own sets
        if name not in allow:
            rep.fail("symbols", "undefined symbol %s is not on the kernel "
                     "allowlist %s" % (name, allow_path))
    for name in sorted(allow):
        if name in defined:
            rep.fail("symbols", "the module defines %s itself; the kernel's "
                     "%s would be shadowed" % (name, name))
    if header_roots:
        text = header_texts(header_roots)
        words = set(re.findall(r"\w+", text))
        for name, (evidence, lineno) in allow.items():
            if evidence == "@compiler":
                rep.note("%s: referenced by the compiler, no header" % name)
                continue
            found = evidence in text if evidence else name in words
            if not found:
                rep.fail("symbols", "%s:%d: %s is not declared in the FreeBSD "
                         "headers (looked for %r)" % (allow_path, lineno,
                                                     name, evidence or name))
    unused = [n for n in allow if n not in undefined]
    if unused:
        rep.note("allowlisted but unused: %s" % " ".join(unused))
    return undefined, defined


def size_report(path, elf, undefined, frames, reloc_counts, debug_path):
    by_kind = collections.Counter()
    for s in elf.sections:
        if not s["flags"] & SHF_ALLOC:
            continue
        if s["flags"] & SHF_EXECINSTR:
            by_kind["text"] += s["size"]
        elif s["type"] == SHT_NOBITS:
            by_kind["bss"] += s["size"]
        elif s["name"].startswith("set_"):
            by_kind["linker sets"] += s["size"]
        elif s["name"].startswith(".rodata"):
            by_kind["rodata"] += s["size"]
        else:
            by_kind["data"] += s["size"]
    print("size report for %s:" % path)
    print("  file            %8d bytes" % os.path.getsize(path))
    if debug_path and os.path.exists(debug_path):
        print("  debug file      %8d bytes (%s)" % (os.path.getsize(debug_path),
                                                   os.path.basename(debug_path)))
    for kind in ("text", "rodata", "data", "linker sets", "bss"):
        print("  %-15s %8d bytes" % (kind, by_kind[kind]))
    local = sum(1 for s in elf.symbols if s["bind"] == STB_LOCAL and s["name"]
                and s["type"] not in (STT_SECTION, STT_FILE)
                and s["shndx"] != SHN_UNDEF)
    glob = sum(1 for s in elf.symbols if s["bind"] != STB_LOCAL
               and s["shndx"] != SHN_UNDEF)
    print("  symbols         %d defined local, %d defined global, %d undefined"
          % (local, glob, len(undefined)))
    print("  relocations     %s" % ", ".join("%s %d" % kv for kv in
                                             sorted(reloc_counts.items())))
    print("  functions       %d; largest stack frames: %s" % (
        len(frames), ", ".join("%s %d" % (short(f), n) for n, f in frames[:4])))


def short(name, width=48):
    """A demangled Rust name without generic arguments or crate paths:
    `<rzil::zil::Zil<K>>::io_done` becomes `Zil::io_done`."""
    while True:
        simpler = re.sub(r"<([^<>]*)>::",
                         lambda m: m.group(1).split(" as ")[0]
                         .split("::")[-1] + "::", name)
        simpler = re.sub(r"<[^<>]*>(?!::)", "", simpler)
        if simpler == name:
            break
        name = simpler
    name = name.strip(":")
    return name if len(name) <= width else "..." + name[-(width - 3):]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("module")
    ap.add_argument("--name", default="rzil", help="expected module name")
    ap.add_argument("--min-version", type=int, default=1)
    ap.add_argument("--allowlist", default=None,
                    help="kernel symbol allowlist (default: kmod/"
                         "kernel-symbols.allow beside this script's repo)")
    ap.add_argument("--headers", action="append", default=[],
                    help="FreeBSD include root to verify the allowlist "
                         "against (repeatable)")
    ap.add_argument("--objdump", default="llvm-objdump-19")
    ap.add_argument("--stack-frame-bytes-max", type=int,
                    default=STACK_FRAME_BYTES_MAX_DEFAULT)
    ap.add_argument("--stack-chain-bytes-max", type=int,
                    default=STACK_CHAIN_BYTES_MAX_DEFAULT)
    ap.add_argument("--entry-stack-bytes", action="append", default=[],
                    metavar="FUNCTION=BYTES",
                    help="chain budget of an entry point that runs on a "
                         "thread with a larger stack (repeatable)")
    ap.add_argument("--stack-waivers", default=None,
                    help="file of 'substring  reason' lines")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    allow_path = args.allowlist or os.path.join(repo, "kmod",
                                                "kernel-symbols.allow")
    rep = Report()
    with open(args.module, "rb") as f:
        try:
            elf = Elf(f.read())
        except ValueError as e:
            print("FAIL elf: %s" % e)
            return rep_exit({"elf"})
    check_elf(elf, rep)
    check_sets(elf, rep)
    check_metadata(elf, rep, args.name, args.min_version)
    reloc_counts = check_relocs(elf, rep)
    funcs = disassemble(args.module, args.objdump)
    check_code(funcs, rep)
    waivers = []
    if args.stack_waivers:
        for line in open(args.stack_waivers):
            line = line.strip()
            if line and not line.startswith("#"):
                parts = line.split(None, 1)
                waivers.append((parts[0], parts[1] if len(parts) > 1 else ""))
    frames = check_stack(funcs, rep, args.stack_frame_bytes_max, waivers)
    budgets = {}
    for spec in args.entry_stack_bytes:
        name, _, size = spec.partition("=")
        budgets[name] = int(size)
    chains = check_chains(funcs, rep, args.stack_chain_bytes_max, waivers,
                          budgets)
    undefined, _defined = check_symbols(elf, rep, allow_path, args.headers)
    check_completion(funcs, rep)
    check_lifecycle(elf, funcs, rep)
    check_errors(funcs, rep)

    if not args.quiet:
        for n in rep.notes:
            print("note: %s" % n)
        size_report(args.module, elf, undefined, frames, reloc_counts,
                    args.module + ".debug")
        print("  deepest chains  %s" % ", ".join(
            "%s %d" % (e, d) for d, e, _p in sorted(chains, reverse=True)))
    checks = ("elf", "sets", "metadata", "relocs", "simd", "redzone", "stack",
              "symbols", "completion", "lifecycle", "errors")
    for c in checks:
        for why in rep.failures.get(c, []):
            print("FAIL %s: %s" % (c, why))
    passed = [c for c in checks if c not in rep.failures]
    print("kmod-check: %s" % " ".join(
        ("ok:" if c in passed else "FAILED:") + c for c in checks))
    print("kmod-check: %d passed, %d failed" % (len(passed),
                                                len(checks) - len(passed)))
    return rep_exit(rep.failed_checks())


def rep_exit(failed):
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
