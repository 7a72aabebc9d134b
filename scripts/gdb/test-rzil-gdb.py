#!/usr/bin/env python3
"""The test of scripts/gdb/rzil.py (`make test-gdb`).

1. Live process: runs host/examples/gdb_target under gdb, stops at its two
   `rzil_gdb_marker` calls and holds what `rzil lwbs` / `rzil waiters` /
   `rzil zil` print to the ground truth the program wrote itself
   (`Zil::for_each_lwb` and its waiter handles). Phase 1 (clean log):
   every lwb, state, seq, block, size, zio counter and waiter must match,
   and nothing may be flagged. Phase 2 (one list slot aimed at a freed,
   0xdeadc0de-filled lwb item, another holding the junk word as a
   pointer): both must be flagged TRASHED, the waiters linked to those
   lwbs too, and every other lwb must still read right.
2. DWARF only: `rzil selfcheck` on kmod/rzil.ko.debug (the kernel module,
   whose instance table must be found) and on the host binaries.

Usage: test-rzil-gdb.py --target BIN --host-bin BIN --kmod-debug FILE
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

# gdb gets this long for each run (the live run takes ~2 s).
GDB_TIMEOUT_S = 120
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rzil.py")
PHASE2_MARK = "@@phase2"
ALIVE_MARK = "@@alive"
# A meaningful dump holds lwbs in at least this many different states.
DISTINCT_STATES_MIN = 6


def fail(msg):
    print("test-gdb: FAIL: %s" % msg, file=sys.stderr)
    sys.exit(1)


def gdb_batch(args):
    cmd = ["gdb", "-nx", "-batch", "-ex", "set pagination off", "-ex", "set width 0",
           "-x", SCRIPT] + args
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=GDB_TIMEOUT_S, universal_newlines=True)
    except subprocess.TimeoutExpired:
        fail("gdb did not finish within %d s: %s" % (GDB_TIMEOUT_S, " ".join(cmd)))
    return p.returncode, p.stdout


def tokens(line):
    return dict(re.findall(r"(\w+)=(\S+)", line))


def parse_sections(text):
    """{section title: [lines]} for each `== ` block, in order, as a list."""
    out = []
    for line in text.splitlines():
        if line.startswith("== "):
            out.append((line[3:], []))
        elif out:
            out[-1][1].append(line)
    return out


def parse_lwbs(lines):
    """[{tokens, zio tokens, waiters [tokens], findings [text]}] from the
    output of `rzil lwbs`."""
    lwbs = []
    for line in lines:
        s = line.strip()
        if line.startswith("lwb["):
            lwbs.append({"t": tokens(line), "zio": {}, "waiters": [], "findings": [],
                         "waiter_findings": []})
        elif not lwbs:
            continue
        elif s.startswith("zio "):
            lwbs[-1]["zio"] = tokens(s)
        elif s.startswith("io in flight: "):
            lwbs[-1]["io"] = s[len("io in flight: "):].split()
        elif s.startswith("waiter "):
            lwbs[-1]["waiters"].append(tokens(s))
        elif s.startswith("!! ") and line.startswith("      "):
            lwbs[-1]["waiter_findings"].append(s)
        elif s.startswith("!! "):
            lwbs[-1]["findings"].append(s)
    return lwbs


def parse_waiters(lines):
    out = {}
    last = None
    for line in lines:
        s = line.strip()
        if s.startswith("waiter "):
            t = tokens(s)
            last = int(t["slot"])
            out[last] = {"t": t, "findings": []}
        elif s.startswith("!! ") and last is not None:
            out[last]["findings"].append(s)
    return out


def check_lwb(got, want, where):
    t = got["t"]
    blk = want["blk"]
    blk_s = "-" if blk is None else "%d:0x%x+%d" % (blk["vdev"], blk["offset_bytes"],
                                                   blk["size_bytes"])
    expect = {
        "seq": str(want["seq"]), "gen": str(want["gen"]), "state": want["state"],
        "blk": blk_s, "size": str(want["size_bytes"]), "nused": str(want["nused_bytes"]),
        "records": str(want["records"]), "waiters": str(want["waiters"]),
    }
    for k, v in expect.items():
        if t.get(k) != v:
            fail("%s: %s=%s, the program says %s" % (where, k, t.get(k), v))
    if not t.get("lr_seq", "").endswith("..%d" % want["max_lr_seq"]):
        fail("%s: lr_seq=%s, the program's max_lr_seq is %d"
             % (where, t.get("lr_seq"), want["max_lr_seq"]))
    z, wz = got["zio"], want["zio"]
    for k, v in (("armed", int(wz["root_armed"])), ("own_done", int(wz["write_own_done"])),
                 ("issued", wz["flushes_issued"])):
        if z.get(k) != str(v):
            fail("%s: zio %s=%s, the program says %s" % (where, k, z.get(k), v))
    io = ["Write"] if wz["root_armed"] and not wz["write_own_done"] else []
    io += ["Flush{vdev:%d}" % v for v in range(64) if wz["flushes_inflight"] >> v & 1]
    if got.get("io") != (io or ["-"]):
        fail("%s: io in flight %s, the program's zio counters say %s"
             % (where, got.get("io"), io or ["-"]))
    if len(got["waiters"]) != want["waiters"]:
        fail("%s: %d waiter lines, the lwb has %d waiters"
             % (where, len(got["waiters"]), want["waiters"]))
    for w in got["waiters"]:
        if w.get("state") != "Linked(%d)" % want["seq"]:
            fail("%s: waiter slot %s is %s" % (where, w.get("slot"), w.get("state")))


def zio_pending(text_line):
    """root and write pending counts from a zio line."""
    m = re.search(r"root: armed=\d+ pending=(\d+).*write: pending=(\d+)", text_line)
    return (int(m.group(1)), int(m.group(2))) if m else None


def check_waiters(got, truth, where, bad_seqs=()):
    for w in truth:
        slot = w["slot"]
        g = got.get(slot)
        if g is None:
            fail("%s: waiter slot %d (%s) not listed" % (where, slot, w["what"]))
        t = g["t"]
        if t.get("gen") != str(w["gen"]):
            fail("%s: waiter slot %d gen=%s, the handle says %d"
                 % (where, slot, t.get("gen"), w["gen"]))
        state = t.get("state", "")
        if w["done"] != state.startswith("Done("):
            fail("%s: waiter slot %d is %s, the program says done=%s"
                 % (where, slot, state, w["done"]))
        if not w["done"] and not state.startswith("Linked("):
            fail("%s: pending waiter slot %d is %s" % (where, slot, state))
        if t.get("abandoned") != ("yes" if w.get("abandoned") else "no"):
            fail("%s: waiter slot %d abandoned=%s" % (where, slot, t.get("abandoned")))
        linked = re.match(r"Linked\((\d+)\)", state)
        flagged = any("freed lwb" in f for f in g["findings"])
        should = bool(linked) and int(linked.group(1)) in bad_seqs
        if flagged != should:
            fail("%s: waiter slot %d (%s) flagged=%s, expected %s: %s"
                 % (where, slot, state, flagged, should, g["findings"]))


def live_test(target):
    tmp = tempfile.mkdtemp(prefix="rzil-gdb-")
    truth_path = os.path.join(tmp, "truth.json")
    code, out = gdb_batch([
        "-ex", "break rzil_gdb_marker",
        "-ex", "run %s" % truth_path,
        "-ex", "rzil lwbs",
        "-ex", "rzil waiters",
        "-ex", "rzil zil",
        "-ex", "echo %s\\n" % PHASE2_MARK,
        "-ex", "continue",
        "-ex", "up",
        "-ex", "rzil lwbs zil",
        "-ex", "rzil waiters &zil",
        # Garbage taken for a Zil: the freed lwb item and the junk word.
        "-ex", "python import json; gdb.execute('rzil lwbs %%s GdbPlatform' %% "
               "json.load(open('%s'))['phase2']['stale_addr'])" % truth_path,
        "-ex", "rzil zil 0xdeadc0dedeadc0de GdbPlatform",
        "-ex", "echo %s\\n" % ALIVE_MARK,
        "-ex", "kill",
        target])
    log_path = os.path.join(tmp, "gdb.out")
    with open(log_path, "w") as f:
        f.write(out)
    if "ptrace" in out and "not permitted" in out:
        fail("gdb may not ptrace here (kernel.yama.ptrace_scope or a container "
             "without CAP_SYS_PTRACE): the live test cannot run. gdb said:\n" + out)
    if PHASE2_MARK not in out or not os.path.exists(truth_path):
        fail("gdb did not reach the target's markers (output in %s):\n%s" % (log_path, out))
    if "Traceback" in out or "Python Exception" in out or "internal-error" in out:
        fail("rzil.py raised (output in %s):\n%s" % (log_path, out))
    with open(truth_path) as f:
        truth = json.load(f)
    p1_text, p2_text = out.split(PHASE2_MARK, 1)
    p1 = parse_sections(p1_text)
    p2 = parse_sections(p2_text)
    if len(p1) != 3 or len(p2) != 4:
        fail("expected 3 reports before and 4 after the second marker, got %d and %d:\n%s"
             % (len(p1), len(p2), out))
    # Garbage read as a Zil: flagged, and gdb lives on.
    freed_as_zil = "\n".join(p2[2][1])
    if "!! TRASHED: the Zil object holds 0xdeadc0de junk" not in freed_as_zil:
        fail("the freed lwb item read as a Zil is not flagged:\n%s" % freed_as_zil)
    junk_as_zil = "\n".join(p2[3][1])
    if "!! TRASHED: cannot read" not in junk_as_zil:
        fail("the junk word read as a Zil's address is not flagged:\n%s" % junk_as_zil)
    if ALIVE_MARK not in p2_text:
        fail("gdb did not survive reading garbage:\n%s" % p2_text)

    # Phase 1: everything as the program sees it, nothing flagged.
    want = truth["phase1"]["lwbs"]
    got = parse_lwbs(p1[0][1])
    if len(got) != len(want):
        fail("phase 1: rzil lwbs listed %d lwbs, the log holds %d" % (len(got), len(want)))
    states = set(l["state"] for l in want)
    if len(states) < DISTINCT_STATES_MIN:
        fail("the target reached only states %s" % sorted(states))
    for g, w in zip(got, want):
        where = "phase 1 lwb seq %d" % w["seq"]
        check_lwb(g, w, where)
        zl = [l for l in p1[0][1] if "root: armed" in l][got.index(g)]
        if zio_pending(zl) != (w["zio"]["root_pending"], w["zio"]["write_pending"]):
            fail("%s: zio pending %s, the program says root %d write %d"
                 % (where, zio_pending(zl), w["zio"]["root_pending"], w["zio"]["write_pending"]))
    if "!!" in p1_text:
        fail("phase 1 (a clean log) has findings:\n%s" % p1_text)
    check_waiters(parse_waiters(p1[1][1]), truth["phase1"]["waiters"], "phase 1")
    summary = "\n".join(p1[2][1])
    if "lwbs=%d " % len(want) not in summary or "findings=0" not in summary:
        fail("phase 1 rzil zil summary:\n%s" % summary)

    # Phase 2: the two corrupted slots flagged, the rest unchanged.
    ph2 = truth["phase2"]
    got2 = parse_lwbs(p2[0][1])
    if len(got2) != len(want):
        fail("phase 2: rzil lwbs listed %d lwbs, the list holds %d" % (len(got2), len(want)))
    for g, w in zip(got2, want):
        where = "phase 2 lwb seq %d" % w["seq"]
        trashed = [f for f in g["findings"] if f.startswith("!! TRASHED")]
        if w["seq"] == ph2["stale_seq"]:
            if g["t"].get("addr") != ph2["stale_addr"]:
                fail("%s: addr=%s, the program aimed the slot at %s"
                     % (where, g["t"].get("addr"), ph2["stale_addr"]))
            if not any("0xdeadc0de junk" in f and "freed lwb item" in f for f in trashed):
                fail("%s: the freed, junk-filled item is not flagged: %s" % (where, g["findings"]))
            if not any("should hold lwb seq %d" % w["seq"] in f for f in trashed):
                fail("%s: the lost seq is not named: %s" % (where, g["findings"]))
        elif w["seq"] == ph2["junk_seq"]:
            if g["t"].get("addr") != "0xdeadc0dedeadc0de":
                fail("%s: addr=%s, the slot holds the junk word" % (where, g["t"].get("addr")))
            if not any("UMA junk" in f for f in trashed):
                fail("%s: the junk pointer is not flagged: %s" % (where, g["findings"]))
        else:
            if g["findings"] or g["waiter_findings"]:
                fail("%s: an intact lwb is flagged: %s" % (where, g["findings"]))
            check_lwb(g, w, where)
    bad = (ph2["stale_seq"], ph2["junk_seq"])
    check_waiters(parse_waiters(p2[1][1]), truth["phase1"]["waiters"], "phase 2", bad)
    n_lwbs = len(want)
    n_waiters = len(truth["phase1"]["waiters"])
    print("test-gdb: live process: %d lwbs (%s), %d waiters read right; phase 2 flagged "
          "the freed lwb (seq %d), the junk pointer (seq %d) and their waiters"
          % (n_lwbs, ", ".join(sorted(states)), n_waiters, ph2["stale_seq"], ph2["junk_seq"]))


def selfcheck(binary, kernel):
    code, out = gdb_batch(["-ex", "rzil selfcheck", binary])
    if "selfcheck: OK" not in out or code != 0:
        fail("rzil selfcheck on %s:\n%s" % (binary, out))
    if kernel and "kernel module symbols: yes" not in out:
        fail("rzil selfcheck on %s did not find the kernel module's symbols:\n%s"
             % (binary, out))
    line = [l for l in out.splitlines() if l.startswith("selfcheck: OK")]
    if kernel:
        code, out = gdb_batch(["-ex", "rzil instances", binary])
        if "0 instance(s) attached" not in out:
            fail("rzil instances on %s (no process: an empty table):\n%s" % (binary, out))
    print("test-gdb: %s: %s" % (os.path.basename(binary), line[0] if line else "ok"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--host-bin", action="append", default=[])
    ap.add_argument("--kmod-debug", required=True)
    a = ap.parse_args()
    if shutil.which("gdb") is None:
        fail("gdb is not installed: run scripts/gdb-setup.sh as root once "
             "(apt-get install gdb), then make test-gdb")
    for f in [a.target, a.kmod_debug] + a.host_bin:
        if not os.path.exists(f):
            fail("%s is missing (make kmod / cargo build first)" % f)
    live_test(a.target)
    selfcheck(a.kmod_debug, kernel=True)
    for b in [a.target] + a.host_bin:
        selfcheck(b, kernel=False)


if __name__ == "__main__":
    main()
