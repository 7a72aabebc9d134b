# rzil.py: read rzil's logs, lwbs and commit waiters in gdb or kgdb.
#
#   (kgdb) source scripts/gdb/rzil.py
#   (kgdb) rzil instances          every attached rzil.ko instance and its log
#   (kgdb) rzil zil [EXPR]         one log: list, waiter table, failure, stats
#   (kgdb) rzil lwbs [EXPR]        every lwb: state, block, zio graph, waiters
#   (kgdb) rzil waiters [EXPR]     every commit waiter in use
#   (kgdb) rzil selfcheck          every type and field this script reads
#                                  exists in the loaded DWARF
#
# EXPR is any expression naming a `rzil::zil::Zil<..>`, a pointer or
# reference to one, or a value holding one (the kernel's
# `rzil_kmod::exports::Instance`, the host's `HostLog`), the kernel's
# `struct rzil_softc *` (`rzil_softcs[0]`) or `struct rzil_core *`, or a
# bare address followed by a word of the Zil type's name when the DWARF
# holds several (`rzil lwbs 0x7ffd1230 HostPlatform`). Without EXPR the
# script takes every instance in the kernel module's `rzil_softcs` table,
# or else the first Zil it finds among the locals of the selected frame
# and its callers.
#
# Memory is never read through gdb's value printer: every object is read
# as raw bytes and decoded by the offsets the DWARF gives, so a trashed
# object cannot crash gdb (gdb 13 aborts on a Rust enum whose discriminant
# matches no variant). Rust enums are decoded by the layout rules rustc
# uses (direct tag = variant index; niche values follow the niche field's
# valid range), which `rzil selfcheck` checks against the loaded DWARF.
#
# Findings are printed on their own line, after what they are about:
#   !! TRASHED: <reason>   the memory is garbage: UMA's INVARIANTS junk
#                          (0xdeadc0de, a freed item), unreadable, or a
#                          value no live object can hold
#   !! SUSPECT: <reason>   readable and well-formed, but inconsistent
#                          with the core's invariants
#
# Python 3, gdb's own API only (gdb >= 10, FreeBSD's kgdb included).

import gdb

# The core's bounds (src/limits.rs); `rzil selfcheck` compares them with
# the table sizes the DWARF shows.
LWB_INFLIGHT_MAX = 64
COMMIT_WAITERS_MAX = 128
LWB_BLOCK_SIZE_MIN_BYTES = 4096
LWB_BLOCK_SIZE_MAX_BYTES = 128 * 1024
LWB_BLOCK_ALIGN_BYTES = 4096
# The kernel module's instance table (RZIL_INSTANCES_MAX in rzil_ioctl.h);
# the array's own length in the DWARF wins when it differs.
RZIL_INSTANCES_MAX = 4
# Bounds of this script's own walks.
FRAMES_MAX = 64
TYPE_DEPTH_MAX = 12
STR_BYTES_MAX = 96
OBJ_BYTES_MAX = 64 * 1024

# UMA's junk word (uma_junk, sys/vm/uma_dbg.c): a freed item under
# INVARIANTS is filled with it.
TRASH_WORD = 0xDEADC0DE

STATE_NAMES = ["NEW", "OPENED", "CLOSED", "READY", "ISSUED", "WRITE_DONE", "FLUSH_DONE"]
STATE_VARIANTS = ["New", "Opened", "Closed", "Ready", "Issued", "WriteDone", "FlushDone"]

ZIL_TYPE_PREFIX = "rzil::zil::Zil<"
LWB_TYPE_SUFFIX = "::LwbObj"
INSTANCE_TYPE = "rzil_kmod::exports::Instance"


class Garbage(Exception):
    """Memory that cannot be what the type says; the message says why."""


# --- raw memory -----------------------------------------------------------

def read_bytes(addr, size):
    if addr == 0:
        raise Garbage("NULL pointer")
    if size > OBJ_BYTES_MAX:
        raise Garbage("object of %d bytes is larger than %d" % (size, OBJ_BYTES_MAX))
    try:
        return bytes(gdb.selected_inferior().read_memory(addr, size))
    except (gdb.MemoryError, gdb.error, OverflowError, ValueError) as e:
        raise Garbage("cannot read %d bytes at %s (%s)" % (size, hexa(addr), e))


_byte_order = []


def byte_order():
    """The target's byte order ("little" or "big"), asked once."""
    if not _byte_order:
        try:
            big = "big endian" in gdb.execute("show endian", to_string=True)
        except gdb.error:
            big = False
        _byte_order.append("big" if big else "little")
    return _byte_order[0]


def hexa(addr):
    return "0x%x" % addr


def junk_pointer(addr):
    """Whether a pointer value is (or carries) the UMA junk word."""
    return (addr >> 32) == TRASH_WORD or (addr & 0xFFFFFFFF) == TRASH_WORD


def junk_words(buf):
    """(junk 32-bit words, all aligned 32-bit words) in `buf`."""
    n = len(buf) // 4
    trash = TRASH_WORD.to_bytes(4, byte_order())
    junk = sum(1 for i in range(n) if buf[4 * i:4 * i + 4] == trash)
    return junk, n


def strip(t):
    return t.strip_typedefs()


def fields_of(t):
    t = strip(t)
    if t.code not in (gdb.TYPE_CODE_STRUCT, gdb.TYPE_CODE_UNION):
        return []
    try:
        return list(t.fields())
    except (gdb.error, TypeError):
        return []


def field_named(t, name):
    for f in fields_of(t):
        if f.name == name:
            return f
    return None


class Obj(object):
    """An object of static type `type` at `addr`, held as raw bytes."""

    def __init__(self, addr, type_, buf=None):
        self.addr = addr
        self.type = strip(type_)
        if buf is None:
            buf = read_bytes(addr, self.type.sizeof)
        self.buf = buf

    @property
    def name(self):
        return str(self.type.name or self.type)

    def has(self, name):
        return field_named(self.type, name) is not None

    def field(self, name):
        f = field_named(self.type, name)
        if f is None:
            raise Garbage("%s has no field %r (stale script? run `rzil selfcheck`)"
                          % (self.name, name))
        off = f.bitpos // 8
        ft = strip(f.type)
        return Obj(self.addr + off, ft, self.buf[off:off + ft.sizeof])

    def path(self, *names):
        o = self
        for n in names:
            o = o.field(n)
        return o

    def uint(self):
        return int.from_bytes(self.buf[:self.type.sizeof], byte_order())

    def sint(self):
        return int.from_bytes(self.buf[:self.type.sizeof], byte_order(), signed=True)

    def deref(self, target=None):
        """Follow a pointer field to an Obj of its target type."""
        addr = self.uint()
        t = target if target is not None else strip(self.type.target())
        if junk_pointer(addr):
            raise Garbage("pointer %s is UMA junk (0xdeadc0de: freed item)" % hexa(addr))
        return Obj(addr, t)


# --- Rust enums -------------------------------------------------------------

def is_rust_enum(t):
    """A Rust enum with data: a struct whose first field is the nameless
    discriminant and whose other fields are the variants."""
    fs = fields_of(t)
    return (len(fs) >= 2 and not fs[0].name
            and all(f.name and strip(f.type).code == gdb.TYPE_CODE_STRUCT for f in fs[1:]))


def scalar_range(t, off, size, depth=0):
    """The valid values (lo, hi) of the scalar of `size` bytes at byte
    `off` inside type `t`, as rustc's layout sees them, or None."""
    t = strip(t)
    if depth > TYPE_DEPTH_MAX:
        return None
    if off == 0 and t.sizeof == size and t.code in (gdb.TYPE_CODE_INT, gdb.TYPE_CODE_CHAR):
        return (0, (1 << (8 * size)) - 1)
    if off == 0 and t.sizeof == size and t.code == gdb.TYPE_CODE_BOOL:
        return (0, 1)
    if off == 0 and t.sizeof == size and t.code == gdb.TYPE_CODE_ENUM:
        vals = [f.enumval for f in t.fields()]
        return (min(vals), max(vals))
    if off == 0 and t.sizeof == size and t.code in (gdb.TYPE_CODE_PTR, gdb.TYPE_CODE_REF):
        return (1, (1 << (8 * size)) - 1)
    if is_rust_enum(t):
        lay = enum_layout(t)
        if lay["tag_off"] == off and lay["tag_size"] == size:
            return lay["tag_range"]
        # A scalar inside the payload of a variant.
        for _, vt in lay["variants"]:
            r = scalar_in_fields(vt, off, size, depth)
            if r is not None:
                return r
        return None
    if t.code == gdb.TYPE_CODE_STRUCT:
        return scalar_in_fields(t, off, size, depth)
    return None


def scalar_in_fields(t, off, size, depth):
    for f in fields_of(t):
        if not f.name and not is_rust_enum(t):
            continue
        fo = f.bitpos // 8
        ft = strip(f.type)
        if fo <= off and off + size <= fo + ft.sizeof:
            r = scalar_range(ft, off - fo, size, depth + 1)
            if r is not None:
                return r
    return None


_enum_cache = {}


def enum_layout(t):
    """Tag place and value → variant map of a Rust enum type."""
    t = strip(t)
    key = (str(t.name), t.sizeof, str(t.objfile.filename) if getattr(t, "objfile", None) else "")
    if key in _enum_cache:
        return _enum_cache[key]
    fs = fields_of(t)
    tag = fs[0]
    tag_off = tag.bitpos // 8
    tag_size = strip(tag.type).sizeof
    variants = [(f.name, strip(f.type)) for f in fs[1:]]
    # The dataful variant of a niche layout holds the tag inside its payload.
    dataful = None
    for i, (_, vt) in enumerate(variants):
        for f in fields_of(vt):
            fo = f.bitpos // 8
            if fo < tag_off + tag_size and tag_off < fo + strip(f.type).sizeof:
                dataful = i
    values = {}
    bits = 8 * tag_size
    if dataful is None:
        # Direct tag: the variant index.
        values = dict((i, i) for i in range(len(variants)))
        tag_range = (0, len(variants) - 1)
    else:
        inner = scalar_in_fields(variants[dataful][1], tag_off, tag_size, 0)
        if inner is None:
            raise Garbage("cannot find the niche of %s" % t.name)
        others = [i for i in range(len(variants)) if i != dataful]
        first, last = min(others), max(others)
        start = (inner[1] + 1) % (1 << bits)
        for i in range(first, last + 1):
            if i != dataful:
                values[(start + i - first) % (1 << bits)] = i
        tag_range = (inner[0], inner[1] + (last - first + 1))
    lay = {"tag_off": tag_off, "tag_size": tag_size, "variants": variants,
           "values": values, "dataful": dataful, "tag_range": tag_range}
    _enum_cache[key] = lay
    return lay


def variant(obj):
    """(variant name, payload Obj) of a Rust enum Obj; Garbage if the tag
    names no variant."""
    lay = enum_layout(obj.type)
    raw = int.from_bytes(obj.buf[lay["tag_off"]:lay["tag_off"] + lay["tag_size"]],
                         byte_order())
    if raw in lay["values"]:
        i = lay["values"][raw]
    elif lay["dataful"] is not None:
        lo, hi = scalar_in_fields(lay["variants"][lay["dataful"]][1], lay["tag_off"],
                                  lay["tag_size"], 0)
        if not lo <= raw <= hi:
            raise Garbage("%s discriminant %s names no variant" % (obj.name, hexa(raw)))
        i = lay["dataful"]
    else:
        raise Garbage("%s discriminant %s names no variant (%d variants)"
                      % (obj.name, hexa(raw), len(lay["variants"])))
    name, vt = lay["variants"][i]
    return name, Obj(obj.addr, vt, obj.buf)


def c_enum(obj):
    """Name of a fieldless (C-like) Rust enum value; Garbage if out of range."""
    raw = obj.uint()
    for f in obj.type.fields():
        if f.enumval == raw:
            return f.name.split("::")[-1]
    raise Garbage("%s value %s out of range" % (obj.name, hexa(raw)))


def fmt(obj, depth=0):
    """A short text form of a small value (errors, options, addresses)."""
    t = obj.type
    if depth > 6:
        return "…"
    if t.sizeof == 0:
        return "()"
    if t.code == gdb.TYPE_CODE_BOOL:
        v = obj.uint()
        if v > 1:
            raise Garbage("bool holds %d" % v)
        return "true" if v else "false"
    if t.code in (gdb.TYPE_CODE_INT, gdb.TYPE_CODE_CHAR):
        return str(obj.uint())
    if t.code == gdb.TYPE_CODE_ENUM:
        return c_enum(obj)
    if t.code in (gdb.TYPE_CODE_PTR, gdb.TYPE_CODE_REF):
        return hexa(obj.uint())
    if is_rust_enum(t):
        name, payload = variant(obj)
        inner = [f for f in fields_of(payload.type) if f.name]
        if not inner:
            return name
        return "%s(%s)" % (name, ", ".join(fmt(payload.field(f.name), depth + 1) for f in inner))
    if t.code == gdb.TYPE_CODE_STRUCT:
        names = [f.name for f in fields_of(t)]
        if "data_ptr" in names and "length" in names:
            return rust_str(obj)
        if not names:
            return "()" if t.sizeof == 0 else (t.name or "?")
        return "{%s}" % ", ".join("%s: %s" % (n, fmt(obj.field(n), depth + 1)) for n in names if n)
    return t.name or "?"


def rust_str(obj):
    """A &str, read at most STR_BYTES_MAX bytes."""
    ptr = obj.field("data_ptr").uint()
    n = obj.field("length").uint()
    if n > OBJ_BYTES_MAX:
        raise Garbage("&str of length %d" % n)
    try:
        s = read_bytes(ptr, min(n, STR_BYTES_MAX)).decode("utf-8", "replace")
    except Garbage as e:
        return "<&str %s: %s>" % (hexa(ptr), e)
    return '"%s%s"' % (s, "…" if n > STR_BYTES_MAX else "")


def opt(obj):
    """An Option: its payload Obj, or None."""
    name, payload = variant(obj)
    if name == "None":
        return None
    return payload.field("__0")


# --- the platform's boxes and tables -----------------------------------------

def pointer_path(t, pred, depth=0):
    """The field path inside type `t` to a pointer whose target satisfies
    `pred`, through structs and enum payloads, or None."""
    t = strip(t)
    if depth > TYPE_DEPTH_MAX:
        return None
    if t.code in (gdb.TYPE_CODE_PTR, gdb.TYPE_CODE_REF):
        try:
            return [] if pred(strip(t.target())) else None
        except gdb.error:
            return None
    if is_rust_enum(t):
        for vname, vt in enum_layout(t)["variants"]:
            p = pointer_path(vt, pred, depth + 1)
            if p is not None:
                return [("variant", vname)] + p
        return None
    for f in fields_of(t):
        if not f.name:
            continue
        p = pointer_path(f.type, pred, depth + 1)
        if p is not None:
            return [("field", f.name)] + p
    return None


def follow(obj, path):
    """Walk a `pointer_path`; returns the pointer value, 0 for a None
    variant on the way."""
    o = obj
    for kind, name in path:
        if kind == "field":
            o = o.field(name)
        else:
            vname, payload = variant(o)
            if vname != name:
                return 0
            o = payload
    return o.uint()


def path_type(t, path):
    """The type at the end of a `pointer_path`."""
    t = strip(t)
    for kind, name in path:
        if kind == "field":
            t = strip(field_named(t, name).type)
        else:
            t = dict(enum_layout(t)["variants"])[name]
    return t


def walk(obj, path):
    """The sub-object at the end of a path, or None when an enum on the
    way holds another variant (an empty Option)."""
    o = obj
    for kind, name in path:
        if kind == "field":
            o = o.field(name)
        else:
            vname, payload = variant(o)
            if vname != name:
                return None
            o = payload
    return o


def embedded_offset(t, pred, depth=0):
    """Byte offset of a sub-object of type `pred` inside `t` (through
    structs and unions such as MaybeUninit), or None."""
    t = strip(t)
    if pred(t):
        return 0
    if depth > TYPE_DEPTH_MAX or is_rust_enum(t):
        return None
    for f in fields_of(t):
        if f.name:
            o = embedded_offset(f.type, pred, depth + 1)
            if o is not None:
                return f.bitpos // 8 + o
    return None


def is_slab_box(t):
    """An index-based pool box (the simulator's SlabBox: a pool reference
    and a slot index)."""
    names = [f.name for f in fields_of(t)]
    return "slab" in names and "index" in names and not is_rust_enum(t)


class LwbLocator(object):
    """How to get from one slot of the lwb list (`Option<P::LwbBox>`) to
    the address of its LwbObj, whatever the platform's box is: a pointer
    (the kernel's ZoneBox, the host's SlabBox, the test kit's MemLwbBox),
    or a pool and an index (the simulator's SlabBox)."""

    def __init__(self, slot_type):
        self.ptr_path = pointer_path(slot_type, is_lwb_type)
        self.slab_path = None
        if self.ptr_path is not None:
            self.lwb_type = strip(path_type(slot_type, self.ptr_path).target())
            return
        self.slab_path = struct_path(slot_type, is_slab_box)
        if self.slab_path is None:
            raise Garbage("no pointer to an LwbObj inside %s" % slot_type.name)
        box = path_type(slot_type, self.slab_path)
        pool = strip(strip(field_named(box, "slab").type).target())
        vec = None
        for f in fields_of(pool):
            if f.name and str(strip(f.type).name or "").startswith("alloc::vec::Vec<"):
                vec = f
        if vec is None:
            raise Garbage("pool %s holds no Vec of slots" % pool.name)
        self.pool_type = pool
        self.vec_field = vec.name
        self.elem_type = strip(strip(vec.type).template_argument(0))
        self.lwb_off = embedded_offset(self.elem_type, is_lwb_type)
        if self.lwb_off is None:
            raise Garbage("no LwbObj inside %s" % self.elem_type.name)
        self.vec_ptr_path = pointer_path(vec.type, lambda _t: True)
        self.lwb_type = strip(path_to_embedded(self.elem_type, is_lwb_type))

    def address(self, slot):
        """The LwbObj's address, or 0 for an empty slot."""
        if self.ptr_path is not None:
            return follow(slot, self.ptr_path)
        box = walk(slot, self.slab_path)
        if box is None:
            return 0
        pool = box.field("slab").deref(self.pool_type)
        vec = pool.field(self.vec_field)
        index = box.field("index").uint()
        n = vec.field("len").uint()
        if index >= n:
            raise Garbage("pool index %d beyond the pool's %d items" % (index, n))
        base = follow(vec, self.vec_ptr_path)
        return base + index * self.elem_type.sizeof + self.lwb_off


def path_to_embedded(t, pred, depth=0):
    """The type satisfying `pred` embedded in `t` (see embedded_offset)."""
    t = strip(t)
    if pred(t):
        return t
    for f in fields_of(t):
        if f.name and depth < TYPE_DEPTH_MAX and not is_rust_enum(t):
            r = path_to_embedded(f.type, pred, depth + 1)
            if r is not None:
                return r
    return None


def struct_path(t, pred, depth=0):
    """The field path inside `t` to a sub-object whose type satisfies
    `pred`, through structs and enum payloads (not pointers), or None."""
    t = strip(t)
    if pred(t):
        return []
    if depth > TYPE_DEPTH_MAX or t.code != gdb.TYPE_CODE_STRUCT:
        return None
    if is_rust_enum(t):
        for vname, vt in enum_layout(t)["variants"]:
            p = struct_path(vt, pred, depth + 1)
            if p is not None:
                return [("variant", vname)] + p
        return None
    for f in fields_of(t):
        if f.name:
            p = struct_path(f.type, pred, depth + 1)
            if p is not None:
                return [("field", f.name)] + p
    return None


def is_lwb_type(t):
    return str(t.name or "").endswith(LWB_TYPE_SUFFIX)


def table(obj):
    """(address of slot 0, slot type, slots) of a platform table
    (`Platform::Slots<T>`: a Box<[T]>, the kernel's KSlots<T>, ...)."""
    t = obj.type
    names = [f.name for f in fields_of(t)]
    if "data_ptr" in names and "length" in names:
        p = obj.field("data_ptr")
        return p.uint(), strip(p.type.target()), obj.field("length").uint()
    n = None
    for ln in ("len", "length"):
        if ln in names:
            n = obj.field(ln).uint()
    path = pointer_path(t, lambda _t: True)
    if n is None or path is None:
        raise Garbage("cannot read the table %s" % obj.name)
    # The element type: the target of the pointer the path ends at.
    o = obj
    for kind, name in path:
        o = o.field(name) if kind == "field" else variant(o)[1]
    return o.uint(), strip(o.type.target()), n


# --- the log ------------------------------------------------------------------

def unlock(obj):
    """The data of a lock_api Mutex (`data: UnsafeCell<T>`)."""
    return obj.path("data", "value")


def io_tokens(lwb):
    """The I/Os the core awaits for an lwb, as the tokens it handed the
    platform name them (IoToken: lwb id + kind): its block write until
    the write completed, a flush per vdev bit, a WR_INDIRECT data write
    per child bit."""
    z = lwb["zio"]
    out = []
    if z.get("root_armed") and not z.get("write_own_done"):
        out.append("Write")
    mask = z.get("flushes_inflight", 0)
    out += ["Flush{vdev:%d}" % v for v in range(64) if mask >> v & 1]
    kids = z.get("children_inflight", 0)
    out += ["Indirect{child:%d}" % c for c in range(128) if kids >> c & 1]
    return out or ["-"]


def trashed(lwb):
    return any(lvl == "TRASHED" for lvl, _ in lwb["flags"].items)


class Flags(object):
    def __init__(self):
        self.items = []

    def trashed(self, reason):
        self.items.append(("TRASHED", reason))

    def suspect(self, reason):
        self.items.append(("SUSPECT", reason))

    def lines(self, indent):
        """The findings; once something is TRASHED, what its garbage
        values also break (SUSPECT) is noise and left out."""
        worst = [i for i in self.items if i[0] == "TRASHED"] or self.items
        return ["%s!! %s: %s" % (indent, lvl, why) for lvl, why in worst]


def ring_const(ring_type):
    """The capacity N of a `Ring<S, N>` from its type name, or None."""
    name = str(ring_type.name or "")
    try:
        return int(name.rsplit(",", 1)[1].strip().rstrip(">"))
    except (IndexError, ValueError):
        return None


class Log(object):
    """One Zil read from memory: its lwbs and its waiter table."""

    def __init__(self, zil):
        self.zil = zil
        self.flags = Flags()
        junk, words = junk_words(zil.buf)
        if junk >= 2:
            self.flags.trashed("the Zil object holds 0xdeadc0de junk in %d of %d words: "
                               "freed memory, or not a Zil" % (junk, words))
        self.state = unlock(zil.field("log"))
        self.lwbs = []
        self.waiters = {}
        self.waiter_flags = {}
        self._read_waiters()
        self._read_lwbs()

    # The waiter table: every slot, decoded; garbage slots flagged.
    def _read_waiters(self):
        wt = self.state.field("waiters")
        try:
            base, st, n = table(wt.field("slots"))
        except Garbage as e:
            self.flags.trashed("waiter table: %s" % e)
            return
        if n != COMMIT_WAITERS_MAX:
            self.flags.suspect("waiter table has %d slots, COMMIT_WAITERS_MAX is %d"
                               % (n, COMMIT_WAITERS_MAX))
        n = min(n, COMMIT_WAITERS_MAX)
        try:
            buf = read_bytes(base, st.sizeof * n)
        except Garbage as e:
            self.flags.trashed("waiter table: %s" % e)
            return
        for i in range(n):
            s = Obj(base + i * st.sizeof, st, buf[i * st.sizeof:(i + 1) * st.sizeof])
            w = {"slot": i, "addr": s.addr}
            fl = Flags()
            try:
                w["gen"] = s.field("gen").uint()
                name, payload = variant(s.field("state"))
                w["state"] = name
                if name == "Linked":
                    w["seq"] = payload.field("__0").uint()
                    w["text"] = "Linked(%d)" % w["seq"]
                elif name == "Done":
                    w["text"] = "Done(%s)" % fmt(payload.field("__0"))
                else:
                    w["text"] = name
                nxt = opt(s.field("next"))
                w["next"] = None if nxt is None else nxt.uint()
                w["abandoned"] = fmt(s.field("abandoned")) == "true"
                w["deadline_ns"] = s.field("deadline_ns").uint()
            except Garbage as e:
                fl.trashed("waiter slot %d: %s" % (i, e))
                w.setdefault("state", "?")
                w.setdefault("text", "?")
            junk, words = junk_words(s.buf)
            if junk:
                fl.trashed("waiter slot %d holds 0xdeadc0de junk in %d of %d words"
                           % (i, junk, words))
            if w.get("next") is not None and w["next"] >= n:
                fl.trashed("waiter slot %d: next slot %d beyond the table" % (i, w["next"]))
            self.waiters[i] = w
            self.waiter_flags[i] = fl

    def _read_lwbs(self):
        ring = self.state.field("lwbs")
        cap = ring_const(ring.type)
        try:
            base, st, n = table(ring.field("slots"))
        except Garbage as e:
            self.flags.trashed("lwb list: %s" % e)
            return
        if n != LWB_INFLIGHT_MAX or (cap is not None and cap != n):
            self.flags.suspect("lwb list has %d slots (Ring capacity %s), LWB_INFLIGHT_MAX is %d"
                               % (n, cap, LWB_INFLIGHT_MAX))
        head = ring.field("head").uint()
        count = ring.field("len").uint()
        self.head, self.count, self.capacity = head, count, n
        if n == 0 or head >= n or count > n:
            self.flags.trashed("lwb list head %d / len %d outside its %d slots" % (head, count, n))
            return
        try:
            loc = LwbLocator(st)
        except Garbage as e:
            self.flags.trashed(str(e))
            return
        lwb_type = loc.lwb_type
        next_gen = self.state.field("next_gen").uint()
        for i in range(min(count, LWB_INFLIGHT_MAX)):
            slot = (head + i) % n
            lwb = {"index": i, "slot": slot, "flags": Flags(), "waiter_list": []}
            self.lwbs.append(lwb)
            fl = lwb["flags"]
            try:
                s = Obj(base + slot * st.sizeof, st)
                addr = loc.address(s)
            except Garbage as e:
                fl.trashed("list slot %d: %s" % (slot, e))
                continue
            lwb["addr"] = addr
            if addr == 0:
                fl.trashed("list slot %d is empty (None) inside the list" % slot)
                continue
            if junk_pointer(addr):
                fl.trashed("lwb pointer %s is UMA junk (0xdeadc0de)" % hexa(addr))
                continue
            try:
                o = Obj(addr, lwb_type)
            except Garbage as e:
                fl.trashed("lwb pointer %s: %s" % (hexa(addr), e))
                continue
            self._decode_lwb(o, lwb, next_gen)
        self._check_seqs()
        self._link_waiters()

    def _check_seqs(self):
        """Block seqs on the list are consecutive: check the readable lwbs
        against each other and name the seq a trashed entry stands for."""
        good = [l for l in self.lwbs if "seq" in l and not trashed(l)]
        for a, b in zip(good, good[1:]):
            if b["seq"] - a["seq"] != b["index"] - a["index"]:
                b["flags"].suspect("seq %d at list position %d after seq %d at %d: "
                                   "block seqs on the list are consecutive"
                                   % (b["seq"], b["index"], a["seq"], a["index"]))
        for l in self.lwbs:
            if not trashed(l) or not good:
                continue
            near = min(good, key=lambda g: abs(g["index"] - l["index"]))
            l["expected_seq"] = near["seq"] + l["index"] - near["index"]
            l["flags"].trashed("list position %d should hold lwb seq %d"
                               % (l["index"], l["expected_seq"]))

    def _decode_lwb(self, o, lwb, next_gen):
        fl = lwb["flags"]
        junk, words = junk_words(o.buf)
        if junk >= 2:
            fl.trashed("0xdeadc0de junk in %d of %d words: a freed lwb item "
                       "(UMA INVARIANTS fill), the #15233 use-after-free shape" % (junk, words))
        try:
            lwb["seq"] = o.path("id", "seq").uint()
            lwb["gen"] = o.path("id", "gen").uint()
        except Garbage as e:
            fl.trashed(str(e))
        try:
            st = c_enum(o.field("state"))
            lwb["state"] = STATE_NAMES[STATE_VARIANTS.index(st)] if st in STATE_VARIANTS else st
        except Garbage as e:
            lwb["state"] = "?"
            fl.trashed("state: %s" % e)
        for k in ("size_bytes", "nused_bytes", "records", "min_lr_seq", "max_lr_seq",
                  "issued_ns", "waiters", "vdevs"):
            lwb[k] = o.field(k).uint()
        for k in ("blk", "error", "write_error", "root_error", "waiters_head"):
            try:
                v = opt(o.field(k))
                if v is None:
                    lwb[k] = None
                elif k == "blk":
                    lwb[k] = (v.field("vdev").uint(), v.field("offset_bytes").uint(),
                              v.field("size_bytes").uint())
                elif k == "waiters_head":
                    lwb[k] = v.uint()
                else:
                    lwb[k] = fmt(v)
            except Garbage as e:
                lwb[k] = "?"
                fl.trashed("%s: %s" % (k, e))
        z = o.field("zio")
        lwb["zio"] = dict((f.name, z.field(f.name).uint()) for f in fields_of(z.type) if f.name)
        gen = lwb.get("gen")
        if gen is not None and not 0 < gen < next_gen:
            fl.suspect("generation %d not below the log's next_gen %d" % (gen, next_gen))
        size = lwb["size_bytes"]
        if (not LWB_BLOCK_SIZE_MIN_BYTES <= size <= LWB_BLOCK_SIZE_MAX_BYTES
                or size % LWB_BLOCK_ALIGN_BYTES):
            fl.suspect("block size %d bytes is not a multiple of 4 KiB in [4 KiB, 128 KiB]" % size)
        if lwb["nused_bytes"] > size:
            fl.suspect("%d bytes used in a %d-byte block" % (lwb["nused_bytes"], size))
        if lwb["waiters"] > COMMIT_WAITERS_MAX:
            fl.suspect("%d waiters, COMMIT_WAITERS_MAX is %d" % (lwb["waiters"], COMMIT_WAITERS_MAX))
        zio = lwb["zio"]
        state = lwb.get("state")
        if state in STATE_NAMES:
            issued = STATE_NAMES.index(state) >= STATE_NAMES.index("ISSUED")
            if issued != bool(zio.get("root_armed")):
                fl.suspect("%s with root zio %sarmed" % (state, "" if zio.get("root_armed") else "not "))
            if state == "FLUSH_DONE" and (zio.get("root_pending") or zio.get("write_pending")
                                          or lwb["waiters"]):
                fl.suspect("FLUSH_DONE with zios or waiters outstanding")
            if state == "WRITE_DONE" and zio.get("write_pending"):
                fl.suspect("WRITE_DONE with the write zio's children outstanding")

    def _link_waiters(self):
        """Walk each lwb's waiter list (bounded by the table) and check it
        against the waiters' own state."""
        on_list = {}
        seqs = dict((l["seq"], l) for l in self.lwbs if "seq" in l and not trashed(l))
        for lwb in self.lwbs:
            cur = lwb.get("waiters_head")
            if not isinstance(cur, int):
                continue
            fl = lwb["flags"]
            for _ in range(COMMIT_WAITERS_MAX + 1):
                if cur is None:
                    break
                w = self.waiters.get(cur)
                if w is None:
                    fl.trashed("waiter list names slot %d beyond the table" % cur)
                    break
                if cur in on_list:
                    fl.trashed("waiter slot %d is on two lists or the list loops" % cur)
                    break
                on_list[cur] = lwb
                lwb["waiter_list"].append(cur)
                if w.get("state") != "Linked" or w.get("seq") != lwb.get("seq"):
                    fl.suspect("waiter slot %d on this lwb's list is %s"
                               % (cur, w.get("text")))
                cur = w.get("next")
            else:
                fl.trashed("waiter list longer than COMMIT_WAITERS_MAX")
            if len(lwb["waiter_list"]) != lwb["waiters"]:
                fl.suspect("%d waiters counted, %d on the list"
                           % (lwb["waiters"], len(lwb["waiter_list"])))
        bad = dict((l["expected_seq"], l) for l in self.lwbs if "expected_seq" in l)
        for i, w in self.waiters.items():
            if w.get("state") != "Linked":
                continue
            seq = w.get("seq")
            if seq in bad:
                self.waiter_flags[i].trashed(
                    "linked to lwb seq %d, whose list entry (position %d) is trashed: "
                    "the waiter points at a freed lwb" % (seq, bad[seq]["index"]))
            elif seq not in seqs:
                self.waiter_flags[i].trashed(
                    "linked to lwb seq %d, which is not on the list: a freed lwb" % seq)
            elif i not in on_list:
                self.waiter_flags[i].suspect("Linked(%d) but on no lwb's list" % seq)

    # --- text ---
    def summary(self):
        st = self.state
        out = ["zil %s  %s" % (hexa(self.zil.addr), self.zil.name)]
        out.append("  lwbs=%d head_slot=%s capacity=%s next_gen=%d durable_lr_seq=%d"
                   % (len(self.lwbs), getattr(self, "head", "?"), getattr(self, "capacity", "?"),
                      st.field("next_gen").uint(), st.field("durable_lr_seq").uint()))
        try:
            failed_at = opt(st.field("failed_at_seq"))
            failure = opt(st.field("failure"))
            out.append("  failed_at_seq=%s failure=%s"
                       % ("-" if failed_at is None else failed_at.uint(),
                          "-" if failure is None else fmt(failure)))
        except Garbage as e:
            self.flags.trashed("failure fields: %s" % e)
        used = [w for w in self.waiters.values() if w.get("state") != "Free"]
        out.append("  waiters_in_use=%d slots=%d" % (len(used), len(self.waiters)))
        try:
            stats = st.field("stats")
            out.append("  stats: " + " ".join("%s=%d" % (f.name, stats.field(f.name).uint())
                                              for f in fields_of(stats.type) if f.name))
        except Garbage as e:
            self.flags.trashed("stats: %s" % e)
        counts = {}
        for l in self.lwbs:
            counts[l.get("state", "?")] = counts.get(l.get("state", "?"), 0) + 1
        out.append("  states: " + " ".join("%s=%d" % (k, counts[k]) for k in
                                          [s for s in STATE_NAMES + ["?"] if s in counts]))
        nflag = sum(len(l["flags"].items) for l in self.lwbs) + sum(
            len(f.items) for f in self.waiter_flags.values())
        out.append("  findings=%d (see rzil lwbs / rzil waiters)" % nflag)
        return out + self.flags.lines("  ")

    def waiter_line(self, i, indent):
        w = self.waiters[i]
        return ("%swaiter slot=%d gen=%s state=%s abandoned=%s deadline_ns=%s next=%s"
                % (indent, i, w.get("gen", "?"), w.get("text", "?"),
                   "yes" if w.get("abandoned") else "no", w.get("deadline_ns", "?"),
                   "-" if w.get("next") is None else w.get("next")))

    def lwb_lines(self):
        out = ["zil %s: %d lwbs, oldest first (list head slot %s of %s)"
               % (hexa(self.zil.addr), len(self.lwbs), getattr(self, "head", "?"),
                  getattr(self, "capacity", "?"))]
        out += self.flags.lines("  ")
        for l in self.lwbs:
            if "seq" not in l:
                out.append("lwb[%d] slot=%d addr=%s" % (l["index"], l["slot"],
                                                      hexa(l["addr"]) if "addr" in l else "?"))
                out += l["flags"].lines("    ")
                continue
            blk = l.get("blk")
            blk_s = "-" if blk is None else ("?" if blk == "?" else
                                             "%d:0x%x+%d" % blk)
            out.append("lwb[%d] slot=%d addr=%s seq=%d gen=%d state=%s blk=%s size=%d nused=%d "
                       "records=%d lr_seq=%d..%d waiters=%d vdevs=0x%x error=%s"
                       % (l["index"], l["slot"], hexa(l["addr"]), l["seq"], l["gen"],
                          l.get("state", "?"), blk_s, l["size_bytes"], l["nused_bytes"],
                          l["records"], l["min_lr_seq"], l["max_lr_seq"], l["waiters"],
                          l["vdevs"], l.get("error") or "-"))
            z = l["zio"]
            out.append("    zio root: armed=%d pending=%s error=%s | write: pending=%s own_done=%d "
                       "error=%s | child: pending=%s inflight=0x%x | flushes: inflight=0x%x "
                       "issued=%s | edges: write->next=%d root->next=%d flushes->next=%d"
                       % (z.get("root_armed", 0), z.get("root_pending"), l.get("root_error") or "-",
                          z.get("write_pending"), z.get("write_own_done", 0),
                          l.get("write_error") or "-", z.get("child_pending"),
                          z.get("children_inflight", 0), z.get("flushes_inflight", 0),
                          z.get("flushes_issued"), z.get("write_parent_next", 0),
                          z.get("root_parent_next", 0), z.get("flush_deferred_next", 0)))
            out.append("    io in flight: %s" % " ".join(io_tokens(l)))
            for i in l["waiter_list"]:
                out.append(self.waiter_line(i, "    "))
                out += self.waiter_flags[i].lines("      ")
            out += l["flags"].lines("    ")
        return out

    def waiter_lines(self):
        out = ["zil %s: commit waiters in use (of %d slots)" % (hexa(self.zil.addr),
                                                                len(self.waiters))]
        for i in sorted(self.waiters):
            if self.waiters[i].get("state") == "Free" and not self.waiter_flags[i].items:
                continue
            out.append(self.waiter_line(i, "  "))
            out += self.waiter_flags[i].lines("    ")
        return out


# --- finding logs ----------------------------------------------------------------

def is_zil_type(t):
    return str(strip(t).name or "").startswith(ZIL_TYPE_PREFIX)


def zil_in(obj, depth=0):
    """The Zil inside `obj` (itself, through a pointer/reference, or a
    field), or None."""
    t = obj.type
    if is_zil_type(t):
        return obj
    if depth > 3:
        return None
    if t.code in (gdb.TYPE_CODE_PTR, gdb.TYPE_CODE_REF):
        tt = strip(t.target())
        if tt.code == gdb.TYPE_CODE_STRUCT and tt.sizeof:
            return zil_in(obj.deref(), depth + 1)
        return None
    for f in fields_of(t):
        if f.name and strip(f.type).code in (gdb.TYPE_CODE_STRUCT, gdb.TYPE_CODE_PTR,
                                             gdb.TYPE_CODE_REF):
            ft = strip(f.type)
            if ft.code == gdb.TYPE_CODE_STRUCT and is_rust_enum(ft):
                continue
            if is_zil_type(ft) or (ft.code != gdb.TYPE_CODE_STRUCT and
                                   is_zil_type(ft.target())):
                return zil_in(obj.field(f.name), depth + 1)
    for f in fields_of(t):
        ft = strip(f.type)
        if f.name and ft.code == gdb.TYPE_CODE_STRUCT and not is_rust_enum(ft):
            z = zil_in(obj.field(f.name), depth + 1)
            if z is not None:
                return z
    return None


def obj_of_value(v):
    """The Obj a gdb.Value names: the object itself, or the target of a
    pointer or reference."""
    t = strip(v.type)
    if t.code == gdb.TYPE_CODE_PTR:
        return Obj(int(v), strip(t.target()))
    if t.code == gdb.TYPE_CODE_REF:
        return Obj(int(v.referenced_value().address), strip(t.target()))
    if v.address is None:
        raise gdb.GdbError("%s is not in memory" % t)
    return Obj(int(v.address), t)


def instance_type():
    try:
        return with_rust(lambda: gdb.lookup_type(INSTANCE_TYPE))
    except gdb.error:
        return None


def softcs():
    """(instance index, softc address, provider, core address) of every
    attached kernel instance, or None without the module's symbols."""
    sym = None
    try:
        sym = gdb.lookup_static_symbol("rzil_softcs")
    except (AttributeError, gdb.error):
        pass
    if sym is None:
        try:
            sym = gdb.lookup_global_symbol("rzil_softcs")
        except gdb.error:
            sym = None
    if sym is not None:
        arr = sym.value()
    else:
        # gdb before 10 has no lookup_static_symbol: ask the expression
        # evaluator (in C, where the table is declared).
        try:
            arr = gdb.parse_and_eval("rzil_softcs")
        except gdb.error:
            return None
    at = strip(arr.type)
    lo, hi = at.range()
    n = min(hi - lo + 1, max(RZIL_INSTANCES_MAX, hi - lo + 1))
    scp = strip(at.target())
    sct = strip(scp.target())
    base = int(arr.address)
    out = []
    for i in range(n):
        try:
            p = Obj(base + i * scp.sizeof, scp).uint()
        except Garbage as e:
            out.append((i, None, None, None, str(e)))
            continue
        if p == 0:
            continue
        try:
            sc = Obj(p, sct)
            prov = sc.field("sc_provider").buf.split(b"\0")[0].decode("ascii", "replace")
            out.append((i, p, prov, sc.field("sc_core").uint(), None))
        except Garbage as e:
            out.append((i, p, None, None, str(e)))
    return out


def kernel_logs():
    insts = softcs()
    if insts is None:
        return None
    it = instance_type()
    logs = []
    for i, sc, prov, core, err in insts:
        if err is not None or it is None:
            logs.append((i, prov, None, err or "no %s type in the DWARF" % INSTANCE_TYPE))
            continue
        try:
            z = zil_in(Obj(core, it))
            logs.append((i, prov, z, None if z is not None else "no Zil inside the instance"))
        except Garbage as e:
            logs.append((i, prov, None, "instance %s: %s" % (hexa(core or 0), e)))
    return logs


def frame_zil():
    """The first Zil among the locals of the selected frame and its callers."""
    f = gdb.selected_frame()
    for _ in range(FRAMES_MAX):
        if f is None:
            break
        try:
            block = f.block()
        except RuntimeError:
            block = None
        while block is not None and not block.is_global and not block.is_static:
            for sym in block:
                if not (sym.is_variable or sym.is_argument):
                    continue
                t = strip(sym.type)
                if not (is_zil_type(t) or (t.code in (gdb.TYPE_CODE_PTR, gdb.TYPE_CODE_REF)
                                           and is_zil_type(t.target()))):
                    continue
                try:
                    return zil_in(obj_of_value(sym.value(f)))
                except (gdb.error, Garbage):
                    continue
            block = block.superblock
        f = f.older()
    return None


def zil_of_expr(expr, pattern=None):
    """The Zil an expression names: a Zil or a value holding one, a
    pointer to either, the kernel's `struct rzil_softc *` or
    `struct rzil_core *`, or a bare address (of the only Zil type in the
    DWARF, or of the one whose name contains `pattern`)."""
    v = with_rust(lambda: gdb.parse_and_eval(expr))
    t = strip(v.type)
    if t.code in (gdb.TYPE_CODE_INT, gdb.TYPE_CODE_ENUM) or (
            t.code == gdb.TYPE_CODE_PTR and pattern is not None):
        names = [n for n in with_rust(zil_types) if pattern is None or pattern in n]
        if len(names) != 1:
            raise gdb.GdbError("%s is an address: name its Zil type with a word of it "
                               "(rzil lwbs ADDR WORD), one of: %s"
                               % (expr, ", ".join(with_rust(zil_types))))
        ptr_mask = (1 << (8 * gdb.lookup_type("char").pointer().sizeof)) - 1
        return Obj(int(v) & ptr_mask, with_rust(lambda: gdb.lookup_type(names[0])))
    obj = obj_of_value(v)
    name = str(obj.type.name or "")
    if name.endswith("rzil_softc"):
        obj = Obj(obj.field("sc_core").uint(), kernel_instance_type())
    elif name.endswith("rzil_core"):
        obj = Obj(obj.addr, kernel_instance_type())
    z = zil_in(obj)
    if z is None:
        raise gdb.GdbError("no rzil::zil::Zil in %s (%s)" % (expr, v.type))
    return z


def kernel_instance_type():
    it = instance_type()
    if it is None:
        raise gdb.GdbError("no %s type in the DWARF (is rzil.ko.debug loaded?)"
                           % INSTANCE_TYPE)
    return it


def logs_for(arg):
    """[(label, Zil Obj or None, error)] for a command's argument."""
    arg = arg.strip()
    if arg:
        try:
            try:
                return [(arg, zil_of_expr(arg), None)]
            except gdb.error:
                words = arg.rsplit(None, 1)
                if len(words) != 2:
                    raise
                return [(arg, zil_of_expr(words[0], words[1]), None)]
        except Garbage as e:
            return [(arg, None, str(e))]
    k = kernel_logs()
    if k is not None:
        return [("instance %d (%s)" % (i, prov), z, err) for i, prov, z, err in k]
    try:
        z = frame_zil()
    except gdb.error:
        z = None
    if z is None:
        raise gdb.GdbError("no rzil_softcs symbol and no Zil among the frame's locals: "
                           "give an expression")
    return [("frame", z, None)]


def with_rust(fn):
    """Run `fn` with the language set to Rust (type names like a::b<c>
    parse only there), restoring the user's setting after."""
    lang = gdb.parameter("language")
    try:
        gdb.execute("set language rust", to_string=True)
        return fn()
    finally:
        gdb.execute("set language %s" % lang, to_string=True)


# --- selfcheck -----------------------------------------------------------------

LOG_FIELDS = ["lwbs", "waiters", "next_gen", "durable_lr_seq", "failed_at_seq", "failure",
              "stats"]
LWB_FIELDS = ["id", "state", "size_bytes", "nused_bytes", "blk", "error", "min_lr_seq",
              "max_lr_seq", "records", "issued_ns", "waiters_head", "waiters", "vdevs", "zio",
              "write_error", "root_error"]
ZIO_FIELDS = ["child_pending", "children_inflight", "flushes_inflight", "write_pending",
              "root_pending", "root_armed", "write_own_done", "write_parent_next",
              "root_parent_next", "flush_deferred_next", "flushes_issued"]
WAITER_FIELDS = ["gen", "state", "deadline_ns", "next", "abandoned"]
WAITER_VARIANTS = ["Free", "Unlinked", "Linked", "Done"]
SOFTC_FIELDS = ["sc_instance", "sc_provider", "sc_core"]


def zil_types():
    out = gdb.execute("info types ^rzil::zil::Zil<", to_string=True)
    names = []
    for line in out.splitlines():
        line = line.strip().rstrip(";")
        if line.startswith(ZIL_TYPE_PREFIX) and line not in names:
            names.append(line)
    return names


def selfcheck():
    problems = []
    checks = [0]

    def need(cond, what):
        checks[0] += 1
        if not cond:
            problems.append(what)
        return cond

    def ftype(t, name, where):
        f = field_named(t, name)
        need(f is not None, "%s has no field %s" % (where, name))
        return strip(f.type) if f is not None else None

    names = with_rust(zil_types)
    need(names, "no rzil::zil::Zil<..> type in the DWARF")
    for n in names:
        try:
            zt = with_rust(lambda: gdb.lookup_type(n))
        except gdb.error as e:
            need(False, "%s: %s" % (n, e))
            continue
        lt = ftype(zt, "log", n)
        if lt is None:
            continue
        dt = ftype(lt, "data", n + ".log")
        vt = ftype(dt, "value", n + ".log.data") if dt is not None else None
        if vt is None:
            continue
        for f in LOG_FIELDS:
            ftype(vt, f, str(vt.name))
        ring = ftype(vt, "lwbs", str(vt.name))
        if ring is not None:
            need(ring_const(ring) == LWB_INFLIGHT_MAX,
                 "%s capacity %s != LWB_INFLIGHT_MAX %d" % (ring.name, ring_const(ring),
                                                           LWB_INFLIGHT_MAX))
            for f in ("slots", "head", "len"):
                ftype(ring, f, str(ring.name))
            slots = ftype(ring, "slots", str(ring.name))
            if slots is not None:
                check_table_type(slots, need)
                elem = table_elem_type(slots)
                loc = None
                try:
                    loc = LwbLocator(elem) if elem is not None else None
                except Garbage as e:
                    need(False, "lwb list slot %s: %s" % (elem.name, e))
                if loc is not None:
                    check_enums_on_path(elem, loc.ptr_path or loc.slab_path, need)
                    check_lwb_type(loc.lwb_type, need, ftype)
        wt = ftype(vt, "waiters", str(vt.name))
        if wt is not None:
            ftype(wt, "free_head", str(wt.name))
            ws = ftype(wt, "slots", str(wt.name))
            if ws is not None:
                check_table_type(ws, need)
                st = table_elem_type(ws)
                if st is not None:
                    for f in WAITER_FIELDS:
                        ftype(st, f, str(st.name))
                    state = ftype(st, "state", str(st.name))
                    if state is not None and need(is_rust_enum(state),
                                                  "%s is not a Rust enum" % state.name):
                        lay = enum_layout(state)
                        need([v for v, _ in lay["variants"]] == WAITER_VARIANTS,
                             "%s variants %s" % (state.name, [v for v, _ in lay["variants"]]))
                        need(len(lay["values"]) + (lay["dataful"] is not None) ==
                             len(WAITER_VARIANTS), "%s: tag values %s" % (state.name, lay["values"]))
                    nxt = ftype(st, "next", str(st.name))
                    if nxt is not None:
                        check_option(nxt, need)
    it = instance_type()
    k = None
    try:
        k = gdb.lookup_static_symbol("rzil_softcs")
    except (AttributeError, gdb.error):
        pass
    if k is not None or it is not None:
        need(k is not None, "no rzil_softcs symbol (kernel module DWARF)")
        need(it is not None, "no %s type" % INSTANCE_TYPE)
        if k is not None:
            sct = strip(strip(strip(k.type).target()).target())
            for f in SOFTC_FIELDS:
                ftype(sct, f, "struct rzil_softc")
            lo, hi = strip(k.type).range()
            need(hi - lo + 1 == RZIL_INSTANCES_MAX,
                 "rzil_softcs has %d slots, RZIL_INSTANCES_MAX is %d" % (hi - lo + 1,
                                                                        RZIL_INSTANCES_MAX))
        if it is not None:
            zf = ftype(it, "zil", INSTANCE_TYPE)
            need(zf is not None and is_zil_type(zf), "%s.zil is not a Zil" % INSTANCE_TYPE)
    return names, checks[0], problems, (k is not None)


def table_elem_type(t):
    names = [f.name for f in fields_of(t)]
    if "data_ptr" in names:
        return strip(strip(field_named(t, "data_ptr").type).target())
    path = pointer_path(t, lambda _t: True)
    if path is None:
        return None
    cur = t
    for kind, name in path:
        cur = strip(field_named(cur, name).type) if kind == "field" else \
            dict(enum_layout(cur)["variants"])[name]
    return strip(cur.target())


def check_table_type(t, need):
    names = [f.name for f in fields_of(t)]
    need(("data_ptr" in names and "length" in names)
         or (("len" in names or "length" in names) and pointer_path(t, lambda _t: True)
             is not None),
         "platform table %s: no (pointer, len)" % t.name)


def check_option(t, need):
    if need(is_rust_enum(t), "%s is not a Rust enum" % t.name):
        lay = enum_layout(t)
        need([v for v, _ in lay["variants"]] == ["None", "Some"],
             "%s variants %s" % (t.name, [v for v, _ in lay["variants"]]))


def check_enums_on_path(t, path, need):
    cur = t
    for kind, name in path:
        if kind == "variant":
            check_option(cur, need)
            cur = dict(enum_layout(cur)["variants"])[name]
        else:
            cur = strip(field_named(cur, name).type)


def check_lwb_type(lt, need, ftype):
    where = str(lt.name)
    for f in LWB_FIELDS:
        ftype(lt, f, where)
    idt = ftype(lt, "id", where)
    if idt is not None:
        ftype(idt, "seq", where + ".id")
        ftype(idt, "gen", where + ".id")
    st = ftype(lt, "state", where)
    if st is not None and need(st.code == gdb.TYPE_CODE_ENUM, "%s is not a C-like enum" % st.name):
        names = [f.name.split("::")[-1] for f in st.fields()]
        vals = [f.enumval for f in st.fields()]
        need(names == STATE_VARIANTS and vals == list(range(len(STATE_VARIANTS))),
             "%s enumerators %s = %s" % (st.name, names, vals))
    zt = ftype(lt, "zio", where)
    if zt is not None:
        for f in ZIO_FIELDS:
            ftype(zt, f, str(zt.name))
    for f in ("blk", "error", "write_error", "root_error", "waiters_head"):
        ot = ftype(lt, f, where)
        if ot is not None:
            check_option(ot, need)
    bt = ftype(lt, "blk", where)
    if bt is not None and is_rust_enum(bt):
        some = dict(enum_layout(bt)["variants"]).get("Some")
        inner = ftype(some, "__0", str(bt.name)) if some is not None else None
        if inner is not None:
            for f in ("vdev", "offset_bytes", "size_bytes"):
                ftype(inner, f, str(inner.name))


# --- commands ---------------------------------------------------------------------

def run_guarded(fn):
    """Run a command body: garbage is reported, gdb errors (a bad
    expression) become one clean error line."""
    try:
        fn()
    except (Garbage, gdb.MemoryError) as e:
        print("!! TRASHED: %s" % e)
    except gdb.GdbError:
        raise
    except gdb.error as e:
        raise gdb.GdbError(str(e))


class RzilPrefix(gdb.Command):
    """rzil: read rzil's logs, lwbs and commit waiters (scripts/gdb/rzil.py).

rzil instances        every attached rzil.ko instance and its log
rzil zil [EXPR]       summary of one log (or each instance's)
rzil lwbs [EXPR]      every lwb: state, block, zio graph, waiters; findings
rzil waiters [EXPR]   every commit waiter in use; findings
rzil selfcheck        the types and fields this script reads exist here

Findings: "!! TRASHED: why" (UMA 0xdeadc0de junk, unreadable memory,
impossible values) and "!! SUSPECT: why" (broken invariants)."""

    def __init__(self):
        super(RzilPrefix, self).__init__("rzil", gdb.COMMAND_DATA, gdb.COMPLETE_NONE, True)


def each_log(arg, body):
    logs = logs_for(arg)
    if not logs:
        print("no rzil instance attached (rzil_softcs is empty)")
    for label, z, err in logs:
        print("== %s" % label)
        if z is None:
            print("!! TRASHED: %s" % err)
            continue
        try:
            log = Log(z)
        except Garbage as e:
            print("!! TRASHED: zil %s: %s" % (hexa(z.addr), e))
            continue
        for line in body(log):
            print(line)


class RzilZil(gdb.Command):
    """Summary of a log: list length, waiters, failure, stats.

Usage: rzil zil [EXPR]. Without EXPR: every kernel instance, or the first
Zil among the selected frame's and its callers' locals."""

    def __init__(self):
        super(RzilZil, self).__init__("rzil zil", gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        run_guarded(lambda: each_log(arg, Log.summary))


class RzilLwbs(gdb.Command):
    """Every lwb on a log's list, oldest first, with its zio graph.

Usage: rzil lwbs [EXPR]. Per lwb: slot, address, seq, generation, state,
block, sizes, records; the zio counters and edges; the I/Os in flight; the
commit waiters linked to it; findings (TRASHED / SUSPECT)."""

    def __init__(self):
        super(RzilLwbs, self).__init__("rzil lwbs", gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        run_guarded(lambda: each_log(arg, Log.lwb_lines))


class RzilWaiters(gdb.Command):
    """Every commit waiter slot in use, with findings.

Usage: rzil waiters [EXPR]."""

    def __init__(self):
        super(RzilWaiters, self).__init__("rzil waiters", gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        run_guarded(lambda: each_log(arg, Log.waiter_lines))


class RzilInstances(gdb.Command):
    """The kernel module's instances (rzil_softcs) and a summary of each log."""

    def __init__(self):
        super(RzilInstances, self).__init__("rzil instances", gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        def body():
            k = kernel_logs()
            if k is None:
                raise gdb.GdbError("no rzil_softcs symbol: load rzil.ko's symbols "
                                   "(kgdb does it for a dump; else add-symbol-file)")
            print("%d instance(s) attached" % len(k))
            for i, prov, z, err in k:
                print("instance %d provider=%s zil=%s" % (i, prov, hexa(z.addr) if z else "?"))
                if err:
                    print("  !! TRASHED: %s" % err)
                    continue
                try:
                    for line in Log(z).summary()[1:]:
                        print(line)
                except Garbage as e:
                    print("  !! TRASHED: %s" % e)
        run_guarded(body)


class RzilSelfcheck(gdb.Command):
    """Check the types, fields and enum layouts this script reads.

Every one must exist in the loaded DWARF (rzil.ko.debug or a host binary)
with the shape the script expects; run it after the core changes."""

    def __init__(self):
        super(RzilSelfcheck, self).__init__("rzil selfcheck", gdb.COMMAND_MAINTENANCE)

    def invoke(self, arg, from_tty):
        names, n, problems, kernel = selfcheck()
        for p in problems:
            print("selfcheck: MISSING: %s" % p)
        print("selfcheck: %d Zil type(s): %s" % (len(names), ", ".join(names)))
        print("selfcheck: kernel module symbols: %s" % ("yes" if kernel else "no"))
        if problems:
            raise gdb.GdbError("selfcheck: FAILED (%d of %d checks)" % (len(problems), n))
        print("selfcheck: OK (%d checks)" % n)


RzilPrefix()
RzilZil()
RzilLwbs()
RzilWaiters()
RzilInstances()
RzilSelfcheck()
