//! Real OpenZFS log blocks against our decoder: the committed subset in
//! `testdata/openzfs-zil` (runs everywhere) and the full shared set in
//! `../shared/testdata/openzfs-zil` (skipped with a note when absent).
//! Every expected value comes from `manifest.json`, i.e. from zdb and the
//! set's export checks, never from our own code.

use rzil::format::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn committed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/openzfs-zil")
}

fn shared_dir() -> Option<PathBuf> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/openzfs-zil");
    if d.join("manifest.json").exists() {
        Some(d)
    } else {
        eprintln!("note: {} absent; shared-set test skipped", d.display());
        None
    }
}

fn manifest(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("manifest.json")).expect("manifest.json");
    serde_json::from_str(&text).expect("manifest.json parses")
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a u64: {v}"))
}

fn hex(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().expect("hex string"), 16).expect("hex")
}

fn verifier_of(v: &Value) -> ZioCksum {
    ZioCksum::verifier(
        hex(&v["guid0"]),
        hex(&v["guid1"]),
        u(&v["objset"]),
        u(&v["seq"]),
    )
}

fn format_of(b: &Value) -> BlockFormat {
    match b["format"].as_str() {
        Some("slim") => BlockFormat::Slim,
        Some("old") => BlockFormat::Old,
        f => panic!("unknown format {f:?}"),
    }
}

/// The pointer a reader would follow to this block (from zdb's view of it).
fn bp_of(b: &Value) -> Blkptr {
    let size = u(&b["block_size"]) as u32;
    let mut bp = Blkptr::log_block(
        u(&b["dva"]["vdev"]) as u32,
        u(&b["dva"]["offset"]),
        size,
        verifier_of(&b["bp_verifier"]),
        u(&b["birth_txg"]),
    );
    if format_of(b) == BlockFormat::Old {
        bp.prop = (bp.prop & !(0xff << 40)) | (ZIO_CHECKSUM_ZILOG << 40);
    }
    bp
}

/// Compare our record decoding with zdb's, record by record.
fn check_records(file: &str, got: &[RecordInfo], want: &[Value]) {
    assert_eq!(got.len(), want.len(), "{file}: record count");
    for (g, w) in got.iter().zip(want) {
        let ctx = format!("{file} @{}", g.offset_in_block);
        assert_eq!(g.common.txtype, u(&w["txtype"]), "{ctx}: txtype");
        assert_eq!(g.txtype_name(), w["txtype_name"].as_str().unwrap(), "{ctx}");
        assert_eq!(g.common.reclen, u(&w["reclen"]), "{ctx}: reclen");
        assert_eq!(g.common.seq, u(&w["seq"]), "{ctx}: seq");
        assert_eq!(g.common.txg, u(&w["txg"]), "{ctx}: txg");
        assert_eq!(g.offset_in_block as u64, u(&w["offset_in_block"]), "{ctx}");
        match (&g.write, w.get("foid")) {
            (Some(wr), Some(foid)) => {
                assert_eq!(wr.foid, u(foid), "{ctx}: foid");
                assert_eq!(wr.offset, u(&w["offset"]), "{ctx}: offset");
                assert_eq!(wr.length, u(&w["length"]), "{ctx}: length");
                let kind = w["write_kind"].as_str().unwrap();
                match wr.kind {
                    WriteKind::Indirect => {
                        assert!(kind.starts_with("WR_INDIRECT"), "{ctx}: {kind}")
                    }
                    WriteKind::Inline { data_bytes } => {
                        assert!(kind.starts_with("data in record"), "{ctx}: {kind}");
                        assert!(
                            kind.contains(&format!(" {} data bytes", data_bytes)),
                            "{ctx}: {kind}"
                        );
                    }
                }
            }
            (None, None) => {}
            (g, w) => panic!("{ctx}: write mismatch ours {g:?} zdb {w:?}"),
        }
    }
}

struct BlockCounts {
    blocks: usize,
    accepted: usize,
    records: usize,
}

/// Verify every block of a manifest: checksum validity, acceptance, reason,
/// chain header fields and every record.
fn check_blocks(dir: &Path) -> BlockCounts {
    let m = manifest(dir);
    let mut counts = BlockCounts {
        blocks: 0,
        accepted: 0,
        records: 0,
    };
    for b in m["blocks"].as_array().unwrap() {
        let file = b["file"].as_str().unwrap();
        let bytes = std::fs::read(dir.join(file)).unwrap();
        assert_eq!(bytes.len() as u64, u(&b["block_size"]), "{file}");
        let verifier = verifier_of(&b["bp_verifier"]);
        let format = format_of(b);
        assert_eq!(bp_of(b).block_format(), Some(format));
        let res = verify_block(&bytes, &verifier, format);
        let checksum_valid = match &res {
            Ok(_) => true,
            Err(e) => e.checksum_valid(),
        };
        assert_eq!(
            checksum_valid,
            b["embedded_checksum_valid"].as_bool().unwrap(),
            "{file}: {res:?}"
        );
        assert_eq!(
            res.is_ok(),
            b["openzfs_accepts_block"].as_bool().unwrap(),
            "{file}: {res:?}"
        );

        // The chain header as the reader sees it, independent of acceptance.
        let chain_off = u(&b["zil_chain_offset"]) as usize;
        let chain = ZilChain::decode_in(&bytes[chain_off..], ByteOrder::Little).unwrap();
        assert_eq!(chain.nused, u(&b["zc_nused"]), "{file}");
        let stored: Vec<u64> = b["zec_cksum_stored"]
            .as_array()
            .unwrap()
            .iter()
            .map(hex)
            .collect();
        assert_eq!(chain.eck.cksum.word.to_vec(), stored, "{file}");
        let nb = &b["zc_next_blk"];
        let next = chain.next_blk;
        assert_eq!(next.is_hole(), nb["is_hole"].as_bool().unwrap(), "{file}");
        assert_eq!(next.prop, hex(&nb["blk_prop"]), "{file}");
        assert_eq!(u64::from(next.vdev()), u(&nb["vdev"]), "{file}");
        assert_eq!(next.offset_bytes(), u(&nb["offset"]), "{file}");
        assert_eq!(next.asize_bytes(), u(&nb["asize"]), "{file}");
        assert_eq!(next.lsize_bytes(), u(&nb["lsize"]), "{file}");
        assert_eq!(next.psize_bytes(), u(&nb["psize"]), "{file}");
        assert_eq!(next.checksum_type(), u(&nb["checksum_type"]), "{file}");
        assert_eq!(next.object_type(), u(&nb["type"]), "{file}");
        assert_eq!(next.level(), u(&nb["level"]), "{file}");
        assert_eq!(
            next.is_embedded(),
            nb["embedded"].as_bool().unwrap(),
            "{file}"
        );
        assert_eq!(next.birth_txg(), u(&nb["birth_txg"]), "{file}");
        assert_eq!(next.verifier(), verifier_of(&nb["verifier"]), "{file}");

        match res {
            Ok(vb) => {
                counts.accepted += 1;
                assert_eq!(vb.byte_order.name(), b["byte_order"].as_str().unwrap());
                assert_eq!(
                    vb.checksummed_bytes as u64,
                    u(&b["checksummed_length"]),
                    "{file}"
                );
                let recs: Vec<RecordInfo> = vb
                    .records()
                    .map(|r| r.expect("record framing").info)
                    .collect();
                check_records(file, &recs, b["records"].as_array().unwrap());
                // The last record ends exactly at zc_nused.
                if let Some(last) = recs.last() {
                    assert_eq!(
                        last.offset_in_block as u64 + last.common.reclen,
                        vb.records_end_bytes as u64
                    );
                }
                counts.records += recs.len();
            }
            Err(e) => {
                let neg = b["negative"]
                    .as_str()
                    .expect("a rejected block is a listed negative");
                if neg.contains("HOLE") || neg.contains("hole") {
                    assert_eq!(e, BlockError::NextIsHole, "{file}");
                    // Its records are well-formed; decode them raw as the export did.
                    let area = &bytes[ZIL_CHAIN_BYTES..chain.nused as usize];
                    let recs: Vec<RecordInfo> =
                        RecordIter::new(area, ByteOrder::Little, ZIL_CHAIN_BYTES)
                            .map(|r| r.unwrap().info)
                            .collect();
                    check_records(
                        file,
                        &recs,
                        b["records_raw_not_decoded_by_zdb"].as_array().unwrap(),
                    );
                } else if neg.contains("flipped") || neg.contains("ONE byte") {
                    let want: Vec<u64> = b["zec_cksum_recomputed"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(hex)
                        .collect();
                    match e {
                        BlockError::ChecksumMismatch { stored, computed } => {
                            assert_eq!(computed.word.to_vec(), want, "{file}");
                            assert_eq!(stored, chain.eck.cksum);
                        }
                        other => panic!("{file}: wrong reason {other:?}"),
                    }
                } else {
                    panic!("{file}: unexpected negative {neg}");
                }
            }
        }
        counts.blocks += 1;
    }
    counts
}

/// Within each chain, every block's next pointer names the next exported block.
fn check_chain_order(dir: &Path) -> usize {
    let m = manifest(dir);
    let blocks = m["blocks"].as_array().unwrap();
    let find = |f: &str| blocks.iter().find(|b| b["file"] == f).unwrap();
    let mut links = 0;
    for c in m["chains"].as_array().unwrap() {
        let order: Vec<&str> = c["order"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for pair in order.windows(2) {
            let (a, b) = (find(pair[0]), find(pair[1]));
            if u(&b["block_seq"]) != u(&a["block_seq"]) + 1 {
                continue; // not consecutive in this subset
            }
            let bytes = std::fs::read(dir.join(pair[0])).unwrap();
            let vb = verify_block(&bytes, &verifier_of(&a["bp_verifier"]), format_of(a)).unwrap();
            let want = bp_of(b);
            let next = vb.next();
            assert_eq!(
                next.offset_bytes(),
                want.offset_bytes(),
                "{} -> {}",
                pair[0],
                pair[1]
            );
            assert_eq!(next.vdev(), want.vdev());
            assert_eq!(next.psize_bytes(), want.psize_bytes());
            assert_eq!(next.verifier(), want.verifier());
            assert_eq!(next.birth_txg(), want.birth_txg());
            links += 1;
        }
    }
    links
}

#[test]
fn committed_blocks_decode_as_zdb_says() {
    let c = check_blocks(&committed_dir());
    assert_eq!((c.blocks, c.accepted), (9, 7));
    assert!(c.records > 300, "{}", c.records);
    assert!(check_chain_order(&committed_dir()) >= 2);
}

#[test]
fn shared_blocks_decode_as_zdb_says() {
    let Some(dir) = shared_dir() else { return };
    let c = check_blocks(&dir);
    // README: 16 real blocks + 1 corrupted copy; 15 accepted; 821 zdb records.
    assert_eq!((c.blocks, c.accepted, c.records), (17, 15, 821));
    assert_eq!(check_chain_order(&dir), 4 + 1 + 1 + 4);
}

/// The blocks of a manifest, addressed by (vdev, offset) as a pool would.
struct ManifestSource {
    blocks: std::collections::HashMap<(u32, u64), Vec<u8>>,
}

#[derive(Debug, PartialEq)]
struct NotExported;

impl BlockSource for ManifestSource {
    type Error = NotExported;
    fn read_block(&mut self, bp: &Blkptr, buf: &mut [u8]) -> Result<(), NotExported> {
        let b = self
            .blocks
            .get(&(bp.vdev(), bp.offset_bytes()))
            .ok_or(NotExported)?;
        if b.len() != buf.len() {
            return Err(NotExported);
        }
        buf.copy_from_slice(b);
        Ok(())
    }
}

fn manifest_source(dir: &Path, m: &Value) -> ManifestSource {
    let mut blocks = std::collections::HashMap::new();
    for b in m["blocks"].as_array().unwrap() {
        if b["negative"]
            .as_str()
            .is_some_and(|n| n.starts_with("synthetic"))
        {
            continue; // the flipped copy shares its original's address
        }
        let bytes = std::fs::read(dir.join(b["file"].as_str().unwrap())).unwrap();
        blocks.insert((u(&b["dva"]["vdev"]) as u32, u(&b["dva"]["offset"])), bytes);
    }
    ManifestSource { blocks }
}

#[derive(Default)]
struct Collect {
    blocks: Vec<BlockInfo>,
    records: Vec<(u64, RecordInfo)>,
}

impl DumpSink for Collect {
    fn block(&mut self, b: &BlockInfo) {
        self.blocks.push(*b);
    }
    fn record(&mut self, r: &RecordInfo) {
        let seq = self.blocks.last().map_or(0, |b| b.blk_seq);
        self.records.push((seq, *r));
    }
}

/// Walk every chain from its first exported block and compare with zdb:
/// blocks in order, every record, and the end.
fn check_chains(dir: &Path) -> (usize, usize) {
    let m = manifest(dir);
    let mut src = manifest_source(dir, &m);
    let blocks = m["blocks"].as_array().unwrap();
    let find = |f: &str| blocks.iter().find(|b| b["file"] == f).unwrap();
    let mut buf = vec![0u8; ZIL_MAX_BLKSZ];
    let (mut walked_blocks, mut walked_records) = (0, 0);
    for c in m["chains"].as_array().unwrap() {
        let order: Vec<&Value> = c["order"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| find(f.as_str().unwrap()))
            .collect();
        if order[0]["negative"]
            .as_str()
            .is_some_and(|n| n.starts_with("synthetic"))
        {
            continue;
        }
        // The exported run of consecutive seqs from the first exported block.
        let mut run = vec![order[0]];
        for b in &order[1..] {
            if u(&b["block_seq"]) == u(&run.last().unwrap()["block_seq"]) + 1 {
                run.push(b);
            } else {
                break;
            }
        }
        let mut sink = Collect::default();
        let s = dump_chain(
            &mut src,
            &bp_of(run[0]),
            &WalkLimits::UNCLAIMED,
            &mut buf,
            &mut sink,
        );
        let name = c["chain"].as_str().unwrap();
        let accepted: Vec<&&Value> = run
            .iter()
            .filter(|b| b["openzfs_accepts_block"] == true)
            .collect();
        assert_eq!(
            s.blocks_accepted as usize,
            accepted.len(),
            "{name}: {:?}",
            s.end
        );
        let want_records: Vec<&Value> = accepted
            .iter()
            .flat_map(|b| b["records"].as_array().unwrap().iter())
            .collect();
        assert_eq!(s.records as usize, want_records.len(), "{name}");
        let got: Vec<RecordInfo> = sink.records.iter().map(|(_, r)| *r).collect();
        check_records(
            name,
            &got,
            &want_records.into_iter().cloned().collect::<Vec<_>>(),
        );
        for (info, b) in sink.blocks.iter().zip(&run) {
            assert_eq!(info.blk_seq, u(&b["block_seq"]), "{name}");
            assert_eq!(info.size_bytes, u(&b["block_size"]), "{name}");
            assert_eq!(
                info.nused_bytes.is_some(),
                b["openzfs_accepts_block"] == true
            );
            if let Some(n) = info.nused_bytes {
                assert_eq!(n, u(&b["zc_nused"]));
            }
            assert_eq!(
                info.checksum_ok,
                b["embedded_checksum_valid"] == true,
                "{name}"
            );
        }
        // The end: a rejected exported block (the hole), or the first block
        // the export does not hold (zdb's chain end or a not-exported block).
        let last = run.last().unwrap();
        if last["openzfs_accepts_block"] == true {
            let want_next = u(&last["block_seq"]) + 1;
            assert_eq!(
                s.end,
                ChainEnd::ReadFailed {
                    blk_seq: want_next,
                    error: NotExported
                },
                "{name}"
            );
        } else {
            assert_eq!(
                s.end,
                ChainEnd::BlockRejected {
                    blk_seq: u(&last["block_seq"]),
                    error: BlockError::NextIsHole
                },
                "{name}"
            );
        }
        // Replay from scratch hands every record over once, in order; with
        // zh_replay_seq in the middle, exactly the later ones.
        let seqs: Vec<u64> = got.iter().map(|r| r.common.seq).collect();
        for replay_seq in [0, seqs.get(seqs.len() / 2).copied().unwrap_or(0)] {
            let header = ZilHeader {
                log: bp_of(run[0]),
                replay_seq,
                ..ZilHeader::default()
            };
            let mut r = SeqLog::default();
            let out = replay_log(&mut src, &header, &mut buf, CHAIN_BLOCKS_MAX, &mut r);
            let want: Vec<u64> = seqs.iter().copied().filter(|&s| s > replay_seq).collect();
            assert_eq!(r.0, want, "{name}");
            assert_eq!(out.replayed as usize, want.len());
            assert_eq!(out.skipped as usize, seqs.len() - want.len());
            assert_eq!(out.failure, None);
        }
        walked_blocks += sink.blocks.len();
        walked_records += got.len();
    }
    (walked_blocks, walked_records)
}

#[derive(Default)]
struct SeqLog(Vec<u64>);

impl Replayer for SeqLog {
    type Error = ();
    fn replay(&mut self, r: &Record<'_>) -> Result<(), ()> {
        self.0.push(r.info.common.seq);
        Ok(())
    }
}

#[test]
fn committed_chains_walk_as_zdb_says() {
    let (blocks, records) = check_chains(&committed_dir());
    assert!(blocks >= 6 && records > 250, "{blocks} {records}");
}

#[test]
fn shared_chains_walk_as_zdb_says() {
    let Some(dir) = shared_dir() else { return };
    let (blocks, records) = check_chains(&dir);
    // Every real block is in a consecutive run from its chain's first export.
    assert_eq!((blocks, records), (16, 821));
}

/// A real little-endian block, rewritten as a big-endian host would have
/// written it (every u64 word swapped, the checksum recomputed in that
/// order), decodes to the same records.
#[test]
fn byte_swapped_real_block_decodes_the_same() {
    let dir = committed_dir();
    let m = manifest(&dir);
    let b = m["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["file"] == "2.3.2-mf-ds4-4.bin")
        .unwrap();
    let mut bytes = std::fs::read(dir.join("2.3.2-mf-ds4-4.bin")).unwrap();
    let v = verifier_of(&b["bp_verifier"]);
    let le = verify_block(&bytes, &v, BlockFormat::Slim).unwrap();
    let want: Vec<RecordInfo> = le.records().map(|r| r.unwrap().info).collect();
    let (nused, next) = (le.nused_bytes as usize, le.next());
    for w in bytes[..nused].chunks_exact_mut(8) {
        w.reverse();
    }
    let written = seal_slim_block_in(&mut bytes, nused, &next, &v, ByteOrder::Big).unwrap();
    assert_eq!(written as u64, u(&b["checksummed_length"]));
    let be = verify_block(&bytes, &v, BlockFormat::Slim).unwrap();
    assert_eq!(be.byte_order, ByteOrder::Big);
    let got: Vec<RecordInfo> = be.records().map(|r| r.unwrap().info).collect();
    assert_eq!(got, want);
    check_records("swapped", &got, b["records"].as_array().unwrap());
}

#[test]
fn infer_block_finds_format_and_verifier() {
    let dir = committed_dir();
    let m = manifest(&dir);
    for b in m["blocks"].as_array().unwrap() {
        let bytes = std::fs::read(dir.join(b["file"].as_str().unwrap())).unwrap();
        let got = infer_block(&bytes);
        if b["zc_next_blk"]["is_hole"] == true {
            assert_eq!(got, None);
        } else {
            assert_eq!(
                got,
                Some((format_of(b), verifier_of(&b["bp_verifier"]))),
                "{}",
                b["file"]
            );
        }
    }
}

#[test]
fn dump_text_reads_like_zdb() {
    let dir = committed_dir();
    let m = manifest(&dir);
    let b = m["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["file"] == "2.3.2-mf-ds4-3.bin")
        .unwrap();
    let bytes = std::fs::read(dir.join("2.3.2-mf-ds4-3.bin")).unwrap();
    let mut sink = Collect::default();
    let info = dump_block(&bytes, &bp_of(b), BlockFormat::Slim, &mut sink);
    let line = info.to_string();
    // zdb: "Block seqno 3, won't claim, DVA[0]=<0:c2c8600:1000> [L0 ZIL intent log] zilog2 ..."
    assert!(
        line.starts_with("Block seqno 3, DVA[0]=<0:c2c8600:1000> zilog2 size=4096"),
        "{line}"
    );
    assert!(
        line.contains("nused=1464 checksum ok records=5 next=<0:e050000:10000> seq 4"),
        "{line}"
    );
    let rec = sink.records[0].1.to_string();
    // zdb: "TX_WRITE            len    256, txg 512, seq 9" / "foid 386, offset 800003d000000, length 40"
    assert_eq!(rec, "TX_WRITE            len    256, txg 512, seq 9, foid 386, offset 800003d000000, length 40, inline");
}
