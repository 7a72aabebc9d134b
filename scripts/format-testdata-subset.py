#!/usr/bin/env python3
"""Copy a few small real OpenZFS log blocks from the shared test set into
testdata/openzfs-zil/ with a manifest.json cut down to those files.

Usage: scripts/format-testdata-subset.py [SHARED_DIR]
(default: ../shared/testdata/openzfs-zil relative to the repo root).
The zdb_lines of every record are dropped (the raw text stays in the shared
set); everything the tests compare is kept."""
import json
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "testdata", "openzfs-zil")
DST = os.path.join(ROOT, "testdata", "openzfs-zil")
FILES = [
    "2.3.2-mf-ds4-3.bin",  # slim chain head, 4 KiB
    "2.3.2-mf-ds4-4.bin",  # slim, 64 KiB, 183 records, stale tail after the checksummed prefix
    "2.3.2-mf-ds4-5.bin",  # slim, 4 KiB, nused 4056
    "2.3.2-mf-ds4flip-5.bin",  # negative: one flipped byte
    "2.3.2-mf-ds1-10.bin",  # negative: valid checksum, hole next pointer
    "2.3.2-v22-ds0-2.bin",  # old format (pool v22), 8 KiB
    "2.1.11-v22-ds0-2.bin",  # old format, 2.1.11
    "2.1.11-mf-ds6-4.bin",  # slim, 2.1.11
    "2.1.11-mf-ds6-5.bin",  # slim, 2.1.11, indirect writes, stale tail
]

with open(os.path.join(SRC, "manifest.json")) as f:
    m = json.load(f)
os.makedirs(DST, exist_ok=True)
blocks = []
for b in m["blocks"]:
    if b["file"] not in FILES:
        continue
    for r in b.get("records", []):
        r.pop("zdb_lines", None)
    blocks.append(b)
    shutil.copyfile(os.path.join(SRC, b["file"]), os.path.join(DST, b["file"]))
chains = []
for c in m["chains"]:
    order = [f for f in c["order"] if f in FILES]
    if order:
        c = dict(c, order=order)
        chains.append(c)
out = {
    "description": "subset of the shared OpenZFS ZIL test set; see README.md",
    "conventions": m.get("conventions"),
    "blocks": blocks,
    "chains": chains,
}
with open(os.path.join(DST, "manifest.json"), "w") as f:
    json.dump(out, f, indent=1, sort_keys=True)
    f.write("\n")
print(f"copied {len(blocks)} blocks to {DST}")
