//! Real log blocks made at test time: `scripts/format-ztest-blocks.sh` runs
//! OpenZFS's ztest, kills it, and saves `zdb -ivvvvv` output next to the
//! pool; this test walks every unencrypted chain straight from the vdev file
//! and checks our decoding against zdb's text. Without `RZIL_ZTEST_DIR` (set
//! by the script, i.e. `make format-ztest`) it prints a note and passes.

use rzil::format::*;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// Bytes before DVA offset 0 on a vdev: two labels and the boot area.
const VDEV_LABEL_START_BYTES: u64 = 4 << 20;

/// One record as zdb prints it.
#[derive(Debug, PartialEq)]
struct ZdbRecord {
    name: String,
    reclen: u64,
    txg: u64,
    seq: u64,
    /// foid, offset, length, has blkptr (indirect)
    write: Option<(u64, u64, u64, bool)>,
}

#[derive(Debug)]
struct ZdbBlock {
    seq: u64,
    bp: Blkptr,
    encrypted: bool,
    records: Vec<ZdbRecord>,
}

#[derive(Debug)]
struct ZdbChain {
    dataset: String,
    blocks: Vec<ZdbBlock>,
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(key)? + key.len();
    let rest = &line[at..];
    let end = rest.find([' ', ',', '>']).unwrap_or(rest.len());
    Some(&rest[..end])
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s, 16).unwrap_or_else(|_| panic!("hex {s:?}"))
}

/// Parse a zdb "Block seqno" line into the pointer zil_parse followed.
fn parse_block_line(line: &str) -> ZdbBlock {
    let seq: u64 = field(line, "Block seqno ").unwrap().parse().unwrap();
    let dva = &line[line.find("DVA[0]=<").unwrap_or_else(|| panic!("{line}")) + 8..];
    let dva = &dva[..dva.find('>').unwrap()];
    let parts: Vec<&str> = dva.split(':').collect();
    let (vdev, offset) = (parts[0].parse::<u32>().unwrap(), hex(parts[1]));
    let size = field(line, " size=").unwrap();
    let psize = hex(size.split('/').nth(1).unwrap().trim_end_matches('P'));
    let birth: u64 = field(line, " birth=")
        .unwrap()
        .split('L')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let ck: Vec<u64> = field(line, " cksum=")
        .unwrap()
        .split(':')
        .map(hex)
        .collect();
    let verifier = ZioCksum {
        word: [ck[0], ck[1], ck[2], ck[3]],
    };
    let mut bp = Blkptr::log_block(vdev, offset, psize as u32, verifier, birth);
    if line.contains(" zilog ") {
        bp.prop = (bp.prop & !(0xff << 40)) | (ZIO_CHECKSUM_ZILOG << 40);
    } else {
        assert!(line.contains(" zilog2 "), "{line}");
    }
    ZdbBlock {
        seq,
        bp,
        encrypted: line.contains(" encrypted "),
        records: vec![],
    }
}

fn parse_zdb(text: &str) -> Vec<ZdbChain> {
    let mut chains: Vec<ZdbChain> = vec![];
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Dataset ") {
            chains.push(ZdbChain {
                dataset: rest.split(' ').next().unwrap().to_string(),
                blocks: vec![],
            });
        } else if line.trim_start().starts_with("Block seqno ") {
            chains
                .last_mut()
                .unwrap()
                .blocks
                .push(parse_block_line(line));
        } else if let Some(rest) = line.strip_prefix("\t\tTX_") {
            // "TX_WRITE            len    256, txg 164, seq 74"; the summary
            // table ("TX_WRITE            5") has no "len".
            if !rest.contains(" len ") {
                continue;
            }
            let name = format!("TX_{}", rest.split(' ').next().unwrap());
            let reclen: u64 = line[line.find(" len ").unwrap() + 5..]
                .trim_start()
                .split(',')
                .next()
                .unwrap()
                .parse()
                .unwrap_or_else(|_| panic!("reclen in {line:?}"));
            let txg = field(line, ", txg ").unwrap().parse().unwrap();
            let seq = field(line, ", seq ").unwrap().parse().unwrap();
            let b = chains.last_mut().unwrap().blocks.last_mut().unwrap();
            b.records.push(ZdbRecord {
                name,
                reclen,
                txg,
                seq,
                write: None,
            });
        } else if let Some(rest) = line.strip_prefix("\t\t\tfoid ") {
            let Some(r) = chains
                .last_mut()
                .and_then(|c| c.blocks.last_mut())
                .and_then(|b| b.records.last_mut())
            else {
                continue;
            };
            if r.name == "TX_WRITE" && r.write.is_none() && rest.contains(", offset ") {
                let foid = rest.split(',').next().unwrap().parse().unwrap();
                r.write = Some((
                    foid,
                    hex(field(line, "offset ").unwrap()),
                    hex(field(line, "length ").unwrap()),
                    false,
                ));
            }
        } else if line.starts_with("\t\t\thas blkptr") {
            if let Some(w) = chains
                .last_mut()
                .and_then(|c| c.blocks.last_mut())
                .and_then(|b| b.records.last_mut())
                .and_then(|r| r.write.as_mut())
            {
                w.3 = true;
            }
        }
    }
    chains.retain(|c| !c.blocks.is_empty());
    chains
}

/// Top-level vdev 0 of the ztest pool: one file, or a mirror when ztest
/// attached children (ztest.0b, ...) during its run. Like OpenZFS's mirror
/// read, a child whose copy fails the block's checksum is skipped for the
/// next; if none verifies, the first child's bytes are returned (and are
/// rejected by the walk, as OpenZFS's read would be).
struct VdevFiles(Vec<File>);

#[derive(Debug, PartialEq)]
struct ReadError(String);

/// Read `buf.len()` bytes at `at`; bytes past the end of the file (ztest
/// grows and shrinks its vdev files) read as zeros, as never-written space.
fn read_at_or_zero(f: &File, buf: &mut [u8], at: u64) -> Result<(), ReadError> {
    let mut done = 0;
    while done < buf.len() {
        match f.read_at(&mut buf[done..], at + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) => return Err(ReadError(e.to_string())),
        }
    }
    buf[done..].fill(0);
    Ok(())
}

impl BlockSource for VdevFiles {
    type Error = ReadError;
    fn read_block(&mut self, bp: &Blkptr, buf: &mut [u8]) -> Result<(), ReadError> {
        let at = bp.offset_bytes() + VDEV_LABEL_START_BYTES;
        let format = bp
            .block_format()
            .ok_or_else(|| ReadError("not a log block".into()))?;
        for f in self.0.iter().rev() {
            read_at_or_zero(f, buf, at)?;
            if verify_block(buf, &bp.verifier(), format).is_ok() {
                return Ok(());
            }
        }
        let first = self
            .0
            .first()
            .ok_or_else(|| ReadError("no vdev file".into()))?;
        read_at_or_zero(first, buf, at)
    }
}

fn vdev_files(pool: &std::path::Path) -> VdevFiles {
    let mut names: Vec<PathBuf> = std::fs::read_dir(pool)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("ztest.0")
        })
        .collect();
    names.sort();
    VdevFiles(names.iter().map(|p| File::open(p).unwrap()).collect())
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
        self.records.push((self.blocks.last().unwrap().blk_seq, *r));
    }
}

#[test]
fn ztest_blocks_decode_as_zdb_reports() {
    let Some(dir) = std::env::var_os("RZIL_ZTEST_DIR").map(PathBuf::from) else {
        eprintln!(
            "note: RZIL_ZTEST_DIR unset; run `make format-ztest` to test on fresh ztest blocks"
        );
        return;
    };
    let text = std::fs::read_to_string(dir.join("zdb.txt")).unwrap();
    let chains = parse_zdb(&text);
    let mut src = vdev_files(&dir.join("pool"));
    let mut buf = vec![0u8; ZIL_MAX_BLKSZ];
    let (mut n_chains, mut n_blocks, mut n_records, mut n_writes) = (0, 0, 0, 0);
    for c in &chains {
        if c.blocks.iter().any(|b| b.encrypted) {
            eprintln!("skip {} (encrypted)", c.dataset);
            continue;
        }
        let mut sink = Collect::default();
        let s = dump_chain(
            &mut src,
            &c.blocks[0].bp,
            &WalkLimits::UNCLAIMED,
            &mut buf,
            &mut sink,
        );
        let ds = &c.dataset;
        // zil_parse visits each block zdb lists; all but the last were read
        // and parsed, the last is where the chain ended (zdb prints it too).
        let (last, parsed) = c.blocks.split_last().unwrap();
        assert_eq!(
            s.blocks_accepted as usize,
            parsed.len(),
            "{ds}: {:?}",
            s.end
        );
        for (ours, theirs) in sink.blocks.iter().zip(&c.blocks) {
            assert_eq!(ours.blk_seq, theirs.seq, "{ds}");
            assert_eq!(
                ours.bp.offset_bytes(),
                theirs.bp.offset_bytes(),
                "{ds}: chain order"
            );
            assert_eq!(ours.bp.psize_bytes(), theirs.bp.psize_bytes(), "{ds}");
            assert_eq!(ours.bp.verifier(), theirs.bp.verifier(), "{ds}");
        }
        assert!(
            matches!(s.end, ChainEnd::BlockRejected { blk_seq, .. } if blk_seq == last.seq),
            "{ds}: chain should end at seq {} but ended {:?}",
            last.seq,
            s.end
        );
        assert!(
            last.records.is_empty(),
            "{ds}: zdb parsed records of the end block"
        );
        let want: Vec<(u64, &ZdbRecord)> = parsed
            .iter()
            .flat_map(|b| b.records.iter().map(move |r| (b.seq, r)))
            .collect();
        assert_eq!(sink.records.len(), want.len(), "{ds}: record count");
        for ((bseq, ours), (zseq, z)) in sink.records.iter().zip(&want) {
            let ctx = format!("{ds} block {bseq} record seq {}", ours.common.seq);
            assert_eq!(bseq, zseq, "{ctx}");
            assert_eq!(ours.txtype_name(), z.name, "{ctx}");
            assert_eq!(
                (ours.common.reclen, ours.common.txg, ours.common.seq),
                (z.reclen, z.txg, z.seq),
                "{ctx}"
            );
            if let Some((foid, offset, length, has_bp)) = z.write {
                let w = ours.write.unwrap();
                assert_eq!(
                    (w.foid, w.offset, w.length),
                    (foid, offset, length),
                    "{ctx}"
                );
                assert_eq!(w.kind == WriteKind::Indirect, has_bp, "{ctx}");
                n_writes += 1;
            }
        }
        eprintln!(
            "{ds}: {} blocks, {} records match zdb; chain end: {}",
            parsed.len(),
            want.len(),
            s.end
        );
        n_chains += 1;
        n_blocks += parsed.len();
        n_records += want.len();
    }
    eprintln!("ztest: {n_chains} chains, {n_blocks} blocks, {n_records} records ({n_writes} TX_WRITE) match zdb");
    assert!(n_records > 0, "no unencrypted records in this run");
}
