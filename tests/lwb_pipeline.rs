//! Scenario tests of the lwb pipeline on the in-memory platform: every
//! completion is delivered by the test, and "durable" is checked by walking
//! the chain in the device model's flushed image, as a replaying reader would.

use rzil::format;
use rzil::lwb::LwbState;
use rzil::testkit::{pattern_byte, MemPlatform};
use rzil::{Config, Error, IoError, IoKind, Limit, Record, WaitStatus, WriteData, Zil};

const MIB: u64 = 1 << 20;

fn new_log(p: &MemPlatform) -> Zil<&MemPlatform> {
    Zil::new(p, Config::new(54)).expect("new log")
}

fn write_rec(data: &[u8]) -> Record<'_> {
    Record::Write {
        foid: 7,
        offset: 0,
        data: WriteData::Copied(data),
    }
}

fn states(zil: &Zil<&MemPlatform>) -> Vec<(u64, LwbState)> {
    let mut v = Vec::new();
    zil.for_each_lwb(|l| v.push((l.id.seq, l.state)));
    v
}

fn poll(zil: &Zil<&MemPlatform>, w: rzil::WaiterId) -> WaitStatus {
    zil.waiter_poll(w).expect("live waiter")
}

#[test]
fn lone_committer_writes_flushes_then_acknowledges() {
    let p = MemPlatform::new(64 * MIB, 64);
    let zil = new_log(&p);
    let head = zil.chain_head().blkptr();
    zil.assign(5, &write_rec(b"hello, log")).unwrap();
    let w = zil.commit().unwrap();
    // Single committer: closed and issued at once; only the write is out.
    assert_eq!(p.pending_len(), 1);
    assert_eq!(p.st().pending[0].io.kind(), IoKind::Write);
    // Linked to the lwb just issued, which its poll names.
    let issued_seq = states(&zil)[0].0;
    assert_eq!(
        poll(&zil, w),
        WaitStatus::Pending {
            deadline_ns: None,
            lwb_seq: Some(issued_seq)
        }
    );
    p.complete(&zil, 0, Ok(()));
    // Write done: a flush went out; the waiter still waits for it.
    assert_eq!(p.pending_len(), 1);
    assert!(matches!(
        p.st().pending[0].io.kind(),
        IoKind::Flush { vdev: 0 }
    ));
    assert!(p.st().woken.is_empty());
    assert!(matches!(poll(&zil, w), WaitStatus::Pending { .. }));
    p.complete(&zil, 0, Ok(()));
    assert_eq!(p.st().woken, vec![w]);
    assert_eq!(poll(&zil, w), WaitStatus::Done(Ok(())));
    // Released: the handle is stale now.
    assert_eq!(zil.waiter_poll(w), Err(Error::StaleHandle));
    let (recs, blocks) = p.durable_records(head);
    assert_eq!(blocks, 1);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].0, 1, "first record seq");
    assert_eq!(recs[0].1, format::TX_WRITE);
    assert_eq!(&recs[0].2[..], b"hello, log");
    assert!(p.st().violations.is_empty());
    assert_eq!(zil.durable_lr_seq(), 1);
}

#[test]
fn opaque_records_round_trip_through_the_chain() {
    let p = MemPlatform::new(64 * MIB, 64);
    let zil = new_log(&p);
    let head = zil.chain_head().blkptr();
    let mut bodies = Vec::new();
    for i in 0..50u64 {
        let body: Vec<u8> = (0..(i * 13 % 200)).map(|j| (i + j) as u8).collect();
        zil.assign(
            3,
            &Record::Opaque {
                txtype: format::TX_CREATE,
                body: &body,
            },
        )
        .unwrap();
        bodies.push(body);
    }
    let w = zil.commit().unwrap();
    p.complete_all(&zil);
    assert_eq!(poll(&zil, w), WaitStatus::Done(Ok(())));
    let (recs, blocks) = p.durable_records(head);
    assert!(
        blocks >= 2,
        "50 records of up to 200 B span several 4 KiB-first blocks"
    );
    assert_eq!(recs.len(), 50);
    for (i, (seq, txtype, body)) in recs.iter().enumerate() {
        assert_eq!(*seq, i as u64 + 1);
        assert_eq!(*txtype, format::TX_CREATE);
        // Body is padded to 8 bytes on disk.
        assert_eq!(&body[..bodies[i].len()], &bodies[i][..]);
        assert!(body[bodies[i].len()..].iter().all(|&b| b == 0));
    }
}

#[test]
fn bad_records_are_refused_with_a_reason() {
    let p = MemPlatform::new(64 * MIB, 64);
    let zil = new_log(&p);
    let big = vec![0u8; 8000];
    assert!(matches!(
        zil.assign(1, &write_rec(&big)),
        Err(Error::InvalidRecord(_))
    ));
    assert!(matches!(
        zil.assign(
            1,
            &Record::Opaque {
                txtype: format::TX_WRITE,
                body: b""
            }
        ),
        Err(Error::InvalidRecord(_))
    ));
    assert!(matches!(
        zil.assign(
            1,
            &Record::Opaque {
                txtype: 99,
                body: b""
            }
        ),
        Err(Error::InvalidRecord(_))
    ));
    assert!(matches!(
        zil.assign(
            1,
            &Record::Opaque {
                txtype: format::TX_COMMIT,
                body: b""
            }
        ),
        Err(Error::InvalidRecord(_))
    ));
    let w = Record::Write {
        foid: 1,
        offset: u64::MAX - 2,
        data: WriteData::NeedCopy { length: 10 },
    };
    assert!(matches!(zil.assign(1, &w), Err(Error::InvalidRecord(_))));
    let w = Record::Write {
        foid: 1,
        offset: 0,
        data: WriteData::NeedCopy { length: 0 },
    };
    assert!(matches!(zil.assign(1, &w), Err(Error::InvalidRecord(_))));
    // Nothing was queued: a commit has nothing to do.
    let w = zil.commit().unwrap();
    assert_eq!(poll(&zil, w), WaitStatus::Done(Ok(())));
    assert_eq!(p.pending_len(), 0);
}

#[test]
fn concurrent_commit_waits_for_company_then_times_out() {
    let p = MemPlatform::new(64 * MIB, 64);
    let zil = new_log(&p);
    zil.assign(1, &write_rec(&[1; 100])).unwrap();
    let w1 = zil.commit().unwrap(); // lone: issued at once
    assert_eq!(p.pending_len(), 1);
    // A second committer arrives while lwb 1 is in flight: the log is shared,
    // so its lwb stays open until the commit timeout.
    zil.assign(1, &write_rec(&[2; 100])).unwrap();
    let w2 = zil.commit().unwrap();
    assert_eq!(p.pending_len(), 1, "lwb 2 is held open");
    let WaitStatus::Pending {
        deadline_ns: Some(deadline),
        lwb_seq: Some(open_seq),
    } = poll(&zil, w2)
    else {
        panic!("an open lwb's waiter has a deadline")
    };
    assert_eq!(states(&zil)[1], (open_seq, LwbState::Opened));
    // A third joins the same open lwb.
    zil.assign(1, &write_rec(&[3; 100])).unwrap();
    let w3 = zil.commit().unwrap();
    assert_eq!(states(&zil)[1], (2, LwbState::Opened));
    assert!(matches!(
        poll(&zil, w3),
        WaitStatus::Pending { lwb_seq: Some(seq), .. } if seq == open_seq
    ));
    p.set_now_ns(deadline);
    zil.waiter_timeout(w2).unwrap();
    assert_eq!(states(&zil)[1], (2, LwbState::Issued));
    assert_eq!(zil.stats().timeouts, 1);
    // The other waiter's timeout finds nothing left to do.
    zil.waiter_timeout(w3).unwrap();
    assert_eq!(zil.stats().timeouts, 1);
    p.complete_all(&zil);
    for w in [w1, w2, w3] {
        assert_eq!(poll(&zil, w), WaitStatus::Done(Ok(())));
    }
    let (recs, _) = p.durable_records(zil.chain_head().blkptr());
    assert_eq!(recs.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2, 3]);
}

/// Commit one record (issued at once: lone committer), then a second while
/// the first is in flight (held open: the log is shared) and time it out:
/// lwbs 1 and 2 are both ISSUED, each with one waiter.
fn two_lwbs_in_flight(
    p: &MemPlatform,
    zil: &Zil<&MemPlatform>,
) -> (rzil::WaiterId, rzil::WaiterId) {
    zil.assign(1, &write_rec(&[1; 64])).unwrap();
    let w1 = zil.commit().unwrap();
    zil.assign(1, &write_rec(&[2; 64])).unwrap();
    let w2 = zil.commit().unwrap();
    let WaitStatus::Pending {
        deadline_ns: Some(d),
        ..
    } = poll(zil, w2)
    else {
        panic!("the second lwb is held open with a deadline")
    };
    p.set_now_ns(d);
    zil.waiter_timeout(w2).unwrap();
    (w1, w2)
}

#[test]
fn waiter_is_not_woken_before_earlier_lwbs_are_flush_done() {
    let p = MemPlatform::new(64 * MIB, 64);
    let zil = new_log(&p);
    let (w1, w2) = two_lwbs_in_flight(&p, &zil);
    // Two writes out: complete lwb 2's write and flush first.
    assert_eq!(p.pending_len(), 2);
    let i2 = p.pending_of(2).unwrap();
    p.complete(&zil, i2, Ok(()));
    // lwb 1 has a waiter, so lwb 2's write is not linked to lwb 1's (#17458):
    // lwb 2's write completes on its own and flushes.
    let i2 = p.pending_of(2).unwrap();
    assert!(matches!(p.st().pending[i2].io.kind(), IoKind::Flush { .. }));
    p.complete(&zil, i2, Ok(()));
    // lwb 2 is flushed, but its root waits for lwb 1's root.
    assert!(
        p.st().woken.is_empty(),
        "no waiter before lwb 1 is FLUSH_DONE"
    );
    assert!(matches!(poll(&zil, w2), WaitStatus::Pending { .. }));
    p.complete_all(&zil);
    assert_eq!(p.st().woken, vec![w1, w2], "woken in lwb order");
    assert_eq!(poll(&zil, w2), WaitStatus::Done(Ok(())));
    assert_eq!(poll(&zil, w1), WaitStatus::Done(Ok(())));
}

/// One commit of 30 records of ~1 KiB: from the 4 KiB first block on,
/// they fill several lwbs, and only the last one has a waiter.
fn commit_spanning_lwbs(zil: &Zil<&MemPlatform>) -> rzil::WaiterId {
    for i in 0..30u8 {
        zil.assign(1, &write_rec(&[i; 1000])).unwrap();
    }
    let w = zil.commit().unwrap();
    let st = states(zil);
    assert!(st.len() >= 3, "several lwbs: {st:?}");
    w
}

/// Complete the pending block writes only, oldest first (flushes stay
/// pending). Bounded by the writes one test can have in flight.
fn complete_writes_only(p: &MemPlatform, zil: &Zil<&MemPlatform>) {
    for _ in 0..1000 {
        let i = p
            .st()
            .pending
            .iter()
            .position(|x| x.io.kind() == IoKind::Write);
        let Some(i) = i else { break };
        p.complete(zil, i, Ok(()));
    }
}

/// Fill lwb 1 and 2 without waiters on 1 (one commit spanning both), so
/// lwb 1 defers its flush into lwb 2, which flushes for both.
#[test]
fn flush_is_deferred_from_an_lwb_without_waiters_into_an_issued_next() {
    let p = MemPlatform::new(64 * MIB, 64);
    let zil = new_log(&p);
    let head = zil.chain_head().blkptr();
    let w = commit_spanning_lwbs(&zil);
    // Complete writes only, in order; then see how many flushes went out.
    complete_writes_only(&p, &zil);
    let s = zil.stats();
    assert!(s.flushes_deferred >= 1, "{s:?}");
    assert!(s.flushes < s.lwbs_issued, "deferral saves flushes: {s:?}");
    p.complete_all(&zil);
    assert_eq!(poll(&zil, w), WaitStatus::Done(Ok(())));
    let (recs, _) = p.durable_records(head);
    assert_eq!(recs.len(), 30);
    assert!(p.st().violations.is_empty(), "{:?}", p.st().violations);
}

#[test]
fn write_error_fails_this_and_every_later_lwb_and_the_log() {
    let p = MemPlatform::new(64 * MIB, 64);
    let zil = new_log(&p);
    let (w1, w2) = two_lwbs_in_flight(&p, &zil);
    // lwb 2 completes fine first; then lwb 1's write fails.
    let i2 = p.pending_of(2).unwrap();
    p.complete(&zil, i2, Ok(()));
    let i1 = p.pending_of(1).unwrap();
    p.complete(&zil, i1, Err(IoError::Io));
    p.complete_all(&zil);
    assert_eq!(
        poll(&zil, w1),
        WaitStatus::Done(Err(Error::Io(IoError::Io)))
    );
    assert!(
        matches!(poll(&zil, w2), WaitStatus::Done(Err(_))),
        "no success after an earlier error"
    );
    assert_eq!(zil.assign(1, &write_rec(b"x")), Err(Error::LogFailed));
    assert_eq!(zil.commit(), Err(Error::LogFailed));
    assert!(zil.failure().is_some());
}

#[test]
fn flush_error_is_an_error_not_a_success() {
    let p = MemPlatform::new(64 * MIB, 64);
    let zil = new_log(&p);
    zil.assign(1, &write_rec(&[1; 64])).unwrap();
    let w = zil.commit().unwrap();
    p.complete(&zil, 0, Ok(()));
    p.complete(&zil, 0, Err(IoError::Io));
    assert_eq!(poll(&zil, w), WaitStatus::Done(Err(Error::Io(IoError::Io))));
}

#[test]
fn flush_not_supported_marks_the_vdev_without_write_cache() {
    let p = MemPlatform::new(64 * MIB, 64);
    let zil = new_log(&p);
    zil.assign(1, &write_rec(&[1; 64])).unwrap();
    let w = zil.commit().unwrap();
    p.complete(&zil, 0, Ok(()));
    p.complete(&zil, 0, Err(IoError::NotSupported));
    assert_eq!(poll(&zil, w), WaitStatus::Done(Ok(())));
    zil.assign(1, &write_rec(&[2; 64])).unwrap();
    let w = zil.commit().unwrap();
    p.complete(&zil, 0, Ok(()));
    assert_eq!(
        p.pending_len(),
        0,
        "no flush to a vdev without a write cache"
    );
    assert_eq!(poll(&zil, w), WaitStatus::Done(Ok(())));
    assert_eq!(zil.stats().flushes, 1);
}

#[test]
fn nocacheflush_skips_flushes() {
    let p = MemPlatform::new(64 * MIB, 64);
    let zil = Zil::new(
        &p,
        Config {
            nocacheflush: true,
            ..Config::new(1)
        },
    )
    .unwrap();
    zil.assign(1, &write_rec(&[1; 64])).unwrap();
    let w = zil.commit().unwrap();
    p.complete(&zil, 0, Ok(()));
    assert_eq!(p.pending_len(), 0);
    assert_eq!(poll(&zil, w), WaitStatus::Done(Ok(())));
}

#[test]
fn stale_and_duplicate_completions_are_refused() {
    let p = MemPlatform::new(64 * MIB, 64);
    let zil = new_log(&p);
    zil.assign(1, &write_rec(&[1; 64])).unwrap();
    let w = zil.commit().unwrap();
    let write = p.st().pending[0].io;
    p.complete(&zil, 0, Ok(()));
    // The same write completing twice is refused and changes nothing.
    assert_eq!(zil.io_done(write, Ok(())), Err(Error::UnexpectedCompletion));
    p.complete_all(&zil);
    assert_eq!(poll(&zil, w), WaitStatus::Done(Ok(())));
    let out = zil.checkpoint(u64::MAX).unwrap();
    assert_eq!(out.lwbs_freed, 1);
    // lwb 1 is freed: its token is stale (generation/seq no longer on the list).
    assert_eq!(zil.io_done(write, Ok(())), Err(Error::StaleHandle));
    assert_eq!(p.st().lwbs_live, 1, "only the tail remains allocated");
}

#[test]
fn checkpoint_frees_only_covered_flush_done_lwbs_and_moves_the_head() {
    let p = MemPlatform::new(64 * MIB, 64);
    let zil = new_log(&p);
    let mut ws = Vec::new();
    for i in 0..4u8 {
        zil.assign(1, &write_rec(&[i; 64])).unwrap();
        ws.push(zil.commit().unwrap());
        p.complete_all(&zil);
    }
    assert_eq!(states(&zil).len(), 5);
    let h0 = zil.chain_head();
    assert_eq!(h0.verifier.seq(), 1);
    // Records 1..=4 live in lwbs 1..=4; covering up to record 2 frees two.
    let out = zil.checkpoint(2).unwrap();
    assert_eq!(out.lwbs_freed, 2);
    assert_eq!(out.head.verifier.seq(), 3);
    // The rest of the chain is still readable from the new head.
    let (recs, blocks) = p.durable_records(out.head.blkptr());
    assert_eq!(blocks, 2);
    assert_eq!(recs.iter().map(|r| r.0).collect::<Vec<_>>(), [3, 4]);
    let out = zil.checkpoint(u64::MAX).unwrap();
    assert_eq!(out.lwbs_freed, 2);
    assert_eq!(states(&zil), vec![(5, LwbState::New)]);
}

#[test]
fn full_log_device_is_back_pressure_until_a_checkpoint() {
    // Room for the first block and three more 4 KiB blocks.
    let p = MemPlatform::new(4 * 4096, 64);
    let zil = new_log(&p);
    let mut acked = 0;
    let mut stuck = None;
    for i in 0..10u8 {
        zil.assign(1, &write_rec(&[i; 64])).unwrap();
        let w = zil.commit().unwrap();
        p.complete_all(&zil);
        match poll(&zil, w) {
            WaitStatus::Done(Ok(())) => acked += 1,
            WaitStatus::Pending {
                deadline_ns: Some(_),
                ..
            } => {
                stuck = Some(w);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(acked, 3);
    let w = stuck.expect("the fourth commit waits for space");
    assert!(zil.failure().is_none(), "a full device is not a failure");
    // Retrying without freeing space changes nothing.
    zil.waiter_timeout(w).unwrap();
    assert!(matches!(poll(&zil, w), WaitStatus::Pending { .. }));
    zil.checkpoint(u64::MAX).unwrap();
    zil.waiter_timeout(w).unwrap();
    p.complete_all(&zil);
    assert_eq!(poll(&zil, w), WaitStatus::Done(Ok(())));
}

#[test]
fn need_copy_writes_are_split_across_blocks_and_fetched_at_fill() {
    let p = MemPlatform::new(64 * MIB, 64);
    let zil = new_log(&p);
    let head = zil.chain_head().blkptr();
    let len = 300_000u64;
    zil.assign(
        2,
        &Record::Write {
            foid: 9,
            offset: 4096,
            data: WriteData::NeedCopy { length: len },
        },
    )
    .unwrap();
    let w = zil.commit().unwrap();
    p.complete_all(&zil);
    assert_eq!(poll(&zil, w), WaitStatus::Done(Ok(())));
    let (recs, blocks) = p.durable_records(head);
    assert!(blocks >= 3, "300 KB needs at least three 128 KiB blocks");
    let mut off = 4096u64;
    for (_, t, body) in &recs {
        assert_eq!(*t, format::TX_WRITE);
        for (i, b) in body.iter().enumerate() {
            assert_eq!(*b, pattern_byte(9, off + i as u64));
        }
        off += body.len() as u64;
    }
    assert_eq!(off, 4096 + len, "every byte logged once, in order");
}

#[test]
fn indirect_write_holds_the_lwb_write_until_the_data_is_written() {
    let p = MemPlatform::new(64 * MIB, 64);
    let zil = new_log(&p);
    zil.assign(
        2,
        &Record::Write {
            foid: 3,
            offset: 0,
            data: WriteData::Indirect { length: 65536 },
        },
    )
    .unwrap();
    let w = zil.commit().unwrap();
    // Child (data) issued before the lwb's write.
    let kinds: Vec<_> = p.st().pending.iter().map(|x| x.io.kind()).collect();
    assert_eq!(kinds, [IoKind::Indirect, IoKind::Write]);
    p.complete(&zil, 1, Ok(())); // the lwb block write completes first
    assert_eq!(p.pending_len(), 1, "no flush while the child is pending");
    assert_eq!(states(&zil)[0].1, LwbState::Issued);
    p.complete(&zil, 0, Ok(())); // data written
                                 // Now the write zio is done and both vdevs (log 0, data 1) are flushed.
    let flushes: Vec<_> = p.st().pending.iter().map(|x| x.io.kind()).collect();
    assert_eq!(
        flushes,
        [IoKind::Flush { vdev: 0 }, IoKind::Flush { vdev: 1 }]
    );
    p.complete_all(&zil);
    assert_eq!(poll(&zil, w), WaitStatus::Done(Ok(())));
}

#[test]
fn waiter_table_limit_is_back_pressure() {
    let p = MemPlatform::new(256 * MIB, 64);
    let zil = new_log(&p);
    let mut ws = Vec::new();
    loop {
        zil.assign(1, &write_rec(&[0; 8])).unwrap();
        match zil.commit() {
            Ok(w) => ws.push(w),
            Err(e) => {
                assert_eq!(e, Error::Backpressure(Limit::CommitWaiters));
                break;
            }
        }
        assert!(ws.len() <= rzil::limits::COMMIT_WAITERS_MAX);
    }
    assert_eq!(ws.len(), rzil::limits::COMMIT_WAITERS_MAX);
}

#[test]
fn lwb_object_is_no_bigger_than_openzfs_lwb_t() {
    let ours = core::mem::size_of::<rzil::lwb::LwbObj>();
    println!("size_of::<LwbObj>() = {ours} bytes (OpenZFS lwb_t: 376)");
    assert!(ours <= 376, "{ours}");
}

#[test]
fn lone_committer_gets_blocks_sized_for_its_bursts() {
    let p = MemPlatform::new(64 * MIB, 64);
    let zil = new_log(&p);
    let data = vec![7u8; 4096];
    for i in 0..50u64 {
        zil.assign(
            1,
            &Record::Write {
                foid: 1,
                offset: i * 4096,
                data: WriteData::Copied(&data),
            },
        )
        .unwrap();
        let w = zil.commit().unwrap();
        p.complete_all(&zil);
        assert_eq!(poll(&zil, w), WaitStatus::Done(Ok(())));
        zil.checkpoint(u64::MAX).unwrap();
    }
    let s = zil.stats();
    // The first 4 KiB block (ZIL_MIN_BLKSZ) is too small for a 4 KiB record
    // and goes out empty; the next is sized for the record, and from then on
    // the planner sizes one 8 KiB block per commit from the burst history.
    assert_eq!(s.lwbs_issued, 51, "{s:?}");
    assert_eq!(s.write_bytes, 4096 + 50 * 8192, "{s:?}");
    // The empty block has no waiters and its successor is ISSUED by the
    // time its write completes: its flush is deferred into the successor.
    assert_eq!(s.flushes, 50, "{s:?}");
    assert_eq!(s.flushes_deferred, 1, "{s:?}");
}

#[test]
fn duplicate_completions_of_inflight_children_are_refused() {
    let p = MemPlatform::new(64 * MIB, 64);
    let zil = new_log(&p);
    // Two indirect children (data on vdev 1) and the block on vdev 0.
    for i in 0..2u64 {
        let rec = Record::Write {
            foid: 3,
            offset: i << 20,
            data: WriteData::Indirect { length: 8192 },
        };
        zil.assign(2, &rec).unwrap();
    }
    let w = zil.commit().unwrap();
    let kinds: Vec<_> = p.st().pending.iter().map(|x| x.io.kind()).collect();
    assert_eq!(kinds, [IoKind::Indirect, IoKind::Indirect, IoKind::Write]);
    let child0 = p.st().pending[0].io;
    p.complete(&zil, 0, Ok(()));
    // The first child again, while the second is still in flight: refused.
    assert_eq!(
        zil.io_done(child0, Ok(())),
        Err(Error::UnexpectedCompletion)
    );
    p.complete(&zil, 0, Ok(())); // second child
    p.complete(&zil, 0, Ok(())); // block write
    let flushes: Vec<_> = p.st().pending.iter().map(|x| x.io.kind()).collect();
    assert_eq!(
        flushes,
        [IoKind::Flush { vdev: 0 }, IoKind::Flush { vdev: 1 }]
    );
    let flush0 = p.st().pending[0].io;
    p.complete(&zil, 0, Ok(()));
    // vdev 0's flush again while vdev 1's is in flight: refused, and the
    // waiter is not told "durable" before vdev 1 is flushed.
    assert_eq!(
        zil.io_done(flush0, Ok(())),
        Err(Error::UnexpectedCompletion)
    );
    assert!(matches!(poll(&zil, w), WaitStatus::Pending { .. }));
    p.complete(&zil, 0, Ok(()));
    assert_eq!(poll(&zil, w), WaitStatus::Done(Ok(())));
}

/// The legal life of an lwb, as `Platform::lwb_state_changed` reports it.
const LIFE: [LwbState; LwbState::COUNT] = [
    LwbState::New,
    LwbState::Opened,
    LwbState::Closed,
    LwbState::Ready,
    LwbState::Issued,
    LwbState::WriteDone,
    LwbState::FlushDone,
];

/// The first `n` reported steps of a legal life.
fn life_prefix(n: usize) -> Vec<(Option<LwbState>, LwbState)> {
    (0..n)
        .map(|i| (i.checked_sub(1).map(|j| LIFE[j]), LIFE[i]))
        .collect()
}

/// Check every lwb's reported transitions against the legal life and the
/// per-state counters against `for_each_lwb`; returns each lwb's number of
/// reported steps (7 is a whole life).
fn check_transitions(p: &MemPlatform, zil: &Zil<&MemPlatform>) -> Vec<(u64, usize)> {
    let views = states(zil);
    let st = p.st();
    assert!(st.violations.is_empty(), "{:?}", st.violations);
    let mut seqs: Vec<u64> = st.lwb_transitions.iter().map(|t| t.0).collect();
    seqs.sort_unstable();
    seqs.dedup();
    let mut steps = Vec::new();
    for &seq in &seqs {
        let got: Vec<_> = st
            .lwb_transitions
            .iter()
            .filter(|t| t.0 == seq)
            .map(|t| (t.1, t.2))
            .collect();
        assert_eq!(got, life_prefix(got.len()), "lwb {seq}");
        if let Some(&(_, state)) = views.iter().find(|v| v.0 == seq) {
            assert_eq!(got.last().map(|t| t.1), Some(state), "lwb {seq} state");
        }
        steps.push((seq, got.len()));
    }
    assert!(
        views.iter().all(|v| seqs.contains(&v.0)),
        "an lwb on the list was never reported: {views:?}"
    );
    // What the kernel's per-state counters say is in each state now must
    // be what the list shows (FLUSH_DONE lwbs also leave by checkpoints).
    let entered = st.lwbs_entered;
    let freed = zil.stats().lwbs_freed;
    for (i, &state) in LIFE.iter().enumerate() {
        let live = views.iter().filter(|v| v.1 == state).count() as u64;
        let left = match LIFE.get(i + 1) {
            Some(_) => entered[i + 1],
            None => freed,
        };
        assert_eq!(entered[i] - left, live, "lwbs in {state:?}: {entered:?}");
    }
    steps
}

#[test]
fn every_lwb_reports_exactly_the_legal_transitions() {
    let p = MemPlatform::new(64 * MIB, 64);
    let zil = new_log(&p);
    assert_eq!(
        check_transitions(&p, &zil),
        [(1, 1)],
        "the first lwb is NEW"
    );
    // Several lwbs in one commit, a second commit held open and timed out.
    for i in 0..20u8 {
        zil.assign(1, &write_rec(&[i; 1500])).unwrap();
    }
    let w1 = zil.commit().unwrap();
    check_transitions(&p, &zil);
    zil.assign(1, &write_rec(&[9; 100])).unwrap();
    let w2 = zil.commit().unwrap();
    check_transitions(&p, &zil);
    if let WaitStatus::Pending {
        deadline_ns: Some(d),
        ..
    } = poll(&zil, w2)
    {
        p.set_now_ns(d);
        zil.waiter_timeout(w2).unwrap();
    }
    // Complete in reverse order, checking after each completion.
    while p.pending_len() > 0 {
        p.complete(&zil, p.pending_len() - 1, Ok(()));
        check_transitions(&p, &zil);
    }
    assert_eq!(poll(&zil, w1), WaitStatus::Done(Ok(())));
    assert_eq!(poll(&zil, w2), WaitStatus::Done(Ok(())));
    zil.checkpoint(zil.durable_lr_seq()).unwrap();
    let steps = check_transitions(&p, &zil);
    assert!(steps.len() >= 4, "several lwbs: {steps:?}");
    let (tail, older) = steps.split_last().unwrap();
    assert_eq!(tail.1, 1, "the tail is NEW");
    assert!(
        older.iter().all(|s| s.1 == LwbState::COUNT),
        "every other lwb lived a whole life: {steps:?}"
    );
    assert_eq!(zil.stats().lwbs_freed, older.len() as u64);
}

#[test]
fn failed_lwbs_take_the_same_steps_carrying_their_error() {
    let p = MemPlatform::new(64 * MIB, 64);
    let zil = new_log(&p);
    let (w1, w2) = two_lwbs_in_flight(&p, &zil);
    let i1 = p.pending_of(1).unwrap();
    p.complete(&zil, i1, Err(IoError::Io));
    check_transitions(&p, &zil);
    p.complete_all(&zil);
    assert!(matches!(poll(&zil, w1), WaitStatus::Done(Err(_))));
    assert!(matches!(poll(&zil, w2), WaitStatus::Done(Err(_))));
    let steps = check_transitions(&p, &zil);
    assert_eq!(&steps[..2], [(1, 7), (2, 7)], "{steps:?}");
    assert_eq!(p.transitions_of(3), life_prefix(1), "the tail stays NEW");
}

/// The kernel builds a `Zil` on a 16 KiB kernel stack: its big tables live
/// in `Platform::Slots`, so the `Zil` itself stays small.
#[test]
fn zil_is_small_enough_to_build_on_a_kernel_stack() {
    const ZIL_BYTES_MAX: usize = 1024;
    let ours = core::mem::size_of::<Zil<&MemPlatform>>();
    println!("size_of::<Zil<&MemPlatform>>() = {ours} bytes");
    assert!(ours <= ZIL_BYTES_MAX, "{ours}");
}

#[test]
fn released_waiter_slots_are_reused_with_a_new_generation() {
    let p = MemPlatform::new(64 * MIB, 64);
    let zil = new_log(&p);
    zil.assign(1, &write_rec(&[1; 64])).unwrap();
    let w1 = zil.commit().unwrap();
    p.complete_all(&zil);
    assert_eq!(poll(&zil, w1), WaitStatus::Done(Ok(())));
    zil.assign(1, &write_rec(&[2; 64])).unwrap();
    let w2 = zil.commit().unwrap();
    assert_eq!(w2.slot, w1.slot, "the released slot is handed out first");
    assert_ne!(w2, w1);
    assert_eq!(zil.waiter_poll(w1), Err(Error::StaleHandle));
    p.complete_all(&zil);
    assert_eq!(poll(&zil, w2), WaitStatus::Done(Ok(())));
}

/// Threads commit at once while another completes I/O in random order and
/// checkpoints, and one record's data cannot be read (its lwb is issued
/// carrying the error and completes on the spot): issue chains hand off
/// (the test kit's `ISSUE_CHAIN_MAX` is 2), the log fails, and still every
/// waiter finishes, every lwb steps legally and no rule is broken.
#[test]
fn concurrent_committers_with_failing_fills_all_finish() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    const COMMITTERS: u64 = 4;
    const COMMITS_PER_THREAD: u64 = 300;
    const BAD_FOID: u64 = 13;
    const COMMIT_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(60);
    let p = MemPlatform::new(256 * MIB, 64);
    p.st().get_data_fails_foid = Some(BAD_FOID);
    let zil = new_log(&p);
    let committing = AtomicUsize::new(COMMITTERS as usize);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut x = 0x2545_f491_4f6c_dd1du64;
            loop {
                // Free what is durable, as the kernel's checkpoint ioctl does;
                // without it the lwb list fills and commits wait for room.
                zil.checkpoint(zil.durable_lr_seq()).expect("checkpoint");
                let n = p.pending_len();
                if n == 0 {
                    if committing.load(Ordering::Acquire) == 0 {
                        break;
                    }
                    std::thread::yield_now();
                    continue;
                }
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Only this thread completes I/O: pending I/O can only
                // grow meanwhile, so the index stays valid.
                p.complete(&zil, (x % n as u64) as usize, Ok(()));
            }
        });
        for t in 0..COMMITTERS {
            let (p, zil, committing) = (&p, &zil, &committing);
            s.spawn(move || {
                // Counts this committer out even if it panics, so the
                // completer stops and the panic is reported.
                struct Out<'a>(&'a AtomicUsize);
                impl Drop for Out<'_> {
                    fn drop(&mut self) {
                        self.0.fetch_sub(1, Ordering::AcqRel);
                    }
                }
                let _out = Out(committing);
                for i in 0..COMMITS_PER_THREAD {
                    let foid = if t == 0 && i == COMMITS_PER_THREAD / 2 {
                        BAD_FOID
                    } else {
                        t + 1
                    };
                    let rec = Record::Write {
                        foid,
                        offset: i * 4096,
                        data: WriteData::NeedCopy {
                            length: 512 + 64 * (i % 40),
                        },
                    };
                    let mut assigned = zil.assign(1, &rec);
                    let started = std::time::Instant::now();
                    while matches!(assigned, Err(Error::Backpressure(_)))
                        && started.elapsed() < COMMIT_WAIT_MAX
                    {
                        std::thread::yield_now();
                        assigned = zil.assign(1, &rec);
                    }
                    if assigned.is_err() {
                        break;
                    }
                    let Ok(w) = zil.commit() else { break };
                    let mut done = false;
                    let started = std::time::Instant::now();
                    while started.elapsed() < COMMIT_WAIT_MAX {
                        match zil.waiter_poll(w).expect("live waiter") {
                            WaitStatus::Done(_) => {
                                done = true;
                                break;
                            }
                            WaitStatus::Pending {
                                deadline_ns: Some(d),
                                ..
                            } => {
                                if <&MemPlatform as rzil::Platform>::now_ns(&p) >= d {
                                    zil.waiter_timeout(w).expect("live waiter");
                                } else {
                                    p.advance_ns(1_000);
                                }
                            }
                            WaitStatus::Pending {
                                deadline_ns: None, ..
                            } => std::thread::yield_now(),
                        }
                    }
                    assert!(done, "thread {t}: commit {i} never finished");
                }
            });
        }
    });
    assert!(
        zil.failure().is_some(),
        "the unreadable record failed the log"
    );
    p.complete_all(&zil);
    check_transitions(&p, &zil);
}

/// The issue chain hands its third lwb off (the test kit's `ISSUE_CHAIN_MAX`
/// is 2) just before submitting the second, and that second lwb carries a
/// fill error, so it completes on the spot and no `io_done` will come to
/// pick the hand-off up: the issuing thread must issue it itself, before
/// any I/O completes. Deterministic: the first lwb's fill is held at a
/// barrier inside `get_data` while lwbs 2 (unreadable data) and 3 close
/// behind it and are parked READY.
#[test]
fn a_handoff_behind_an_lwb_that_fails_on_the_spot_is_issued_at_once() {
    use std::sync::{Arc, Barrier};
    const GATED_FOID: u64 = 21;
    const BAD_FOID: u64 = 13;
    let p = MemPlatform::new(64 * MIB, 64);
    let gate = Arc::new(Barrier::new(2));
    p.st().get_data_gate = Some((GATED_FOID, gate.clone()));
    p.st().get_data_fails_foid = Some(BAD_FOID);
    let zil = new_log(&p);
    let need_copy = |foid| Record::Write {
        foid,
        offset: 0,
        data: WriteData::NeedCopy { length: 512 },
    };
    // Times the waiter of a held-open lwb out, closing and filling it.
    let commit_and_time_out = |rec: &Record<'_>| {
        zil.assign(1, rec).unwrap();
        let w = zil.commit().unwrap();
        let WaitStatus::Pending {
            deadline_ns: Some(d),
            ..
        } = poll(&zil, w)
        else {
            panic!("lwb 1 is not done: a later lwb is held open")
        };
        p.set_now_ns(d);
        zil.waiter_timeout(w).unwrap();
        w
    };
    std::thread::scope(|s| {
        // A lone committer closes lwb 1 at once and stops inside its fill.
        let a = s.spawn(|| {
            zil.assign(1, &need_copy(GATED_FOID)).unwrap();
            zil.commit().unwrap()
        });
        gate.wait();
        let w2 = commit_and_time_out(&need_copy(BAD_FOID));
        let w3 = commit_and_time_out(&write_rec(&[3; 64]));
        assert_eq!(
            states(&zil)[..3],
            [
                (1, LwbState::Closed),
                (2, LwbState::Ready),
                (3, LwbState::Ready)
            ],
            "lwbs 2 and 3 are parked behind lwb 1"
        );
        assert_eq!(p.pending_len(), 0);
        gate.wait();
        let w1 = a.join().unwrap();
        // No I/O has completed. Lwb 2's write completed on the spot with
        // its error, and lwb 3, handed off just before, was issued by the
        // same thread (READY here would be the hand-off left for an
        // io_done that lwb 2 never gets): the writes of lwbs 1 and 3 are
        // out. Every waiter waits for lwb 1: a root completes after the
        // previous one.
        assert_eq!(
            states(&zil)[..3],
            [
                (1, LwbState::Issued),
                (2, LwbState::WriteDone),
                (3, LwbState::Issued)
            ]
        );
        assert_eq!(p.pending_len(), 2, "the writes of lwbs 1 and 3");
        for w in [w1, w2, w3] {
            assert!(matches!(poll(&zil, w), WaitStatus::Pending { .. }));
        }
        p.complete_all(&zil);
        assert_eq!(poll(&zil, w1), WaitStatus::Done(Ok(())));
        assert!(matches!(poll(&zil, w2), WaitStatus::Done(Err(_))));
        assert!(matches!(poll(&zil, w3), WaitStatus::Done(Err(_))));
    });
    let steps = check_transitions(&p, &zil);
    assert_eq!(&steps[..3], [(1, 7), (2, 7), (3, 7)], "{steps:?}");
}

/// Commit until the waiter table is full; returns how many commits got a
/// waiter.
fn waiters_left(zil: &Zil<&MemPlatform>) -> (usize, Vec<rzil::WaiterId>) {
    let mut ws = Vec::new();
    for _ in 0..=rzil::limits::COMMIT_WAITERS_MAX {
        zil.assign(1, &write_rec(&[0; 8])).unwrap();
        match zil.commit() {
            Ok(w) => ws.push(w),
            Err(e) => {
                assert_eq!(e, Error::Backpressure(Limit::CommitWaiters));
                break;
            }
        }
    }
    (ws.len(), ws)
}

/// A committer interrupted while it sleeps (the kernel's commit ioctl on a
/// signal) abandons its waiter: the handle goes stale at once, nobody is
/// woken for it, its slot comes back when its lwb is done, and its record
/// is still written, unacknowledged.
#[test]
fn an_abandoned_linked_waiter_frees_its_slot_when_its_lwb_is_done() {
    let p = MemPlatform::new(256 * MIB, 64);
    let zil = new_log(&p);
    let (w1, w2) = two_lwbs_in_flight(&p, &zil);
    zil.waiter_abandon(w2).unwrap();
    assert_eq!(zil.waiter_poll(w2), Err(Error::StaleHandle));
    assert_eq!(zil.waiter_abandon(w2), Err(Error::StaleHandle));
    p.complete_all(&zil);
    assert_eq!(poll(&zil, w1), WaitStatus::Done(Ok(())));
    assert!(
        !p.st().woken.contains(&w2),
        "no wake-up for an abandoned waiter"
    );
    let (recs, _) = p.durable_records(zil.chain_head().blkptr());
    assert_eq!(recs.len(), 2, "the abandoned commit's record is written");
    let (n, _) = waiters_left(&zil);
    assert_eq!(n, rzil::limits::COMMIT_WAITERS_MAX, "both slots came back");
}

/// A waiter left unlinked by back-pressure, or already done, is released
/// by `waiter_abandon` at once.
#[test]
fn an_abandoned_unlinked_or_done_waiter_is_released_at_once() {
    let p = MemPlatform::new(256 * MIB, 64);
    let zil = new_log(&p);
    let (n, ws) = waiters_left(&zil);
    assert_eq!(n, rzil::limits::COMMIT_WAITERS_MAX);
    // Give every waiter up, whatever state it is in (linked to the open
    // tail, to an issued lwb, or done), then complete everything.
    for &w in &ws {
        zil.waiter_abandon(w).unwrap();
    }
    p.complete_all(&zil);
    // Waiters linked to the open tail are released when it is done: one
    // more commit, timed out, closes it.
    let w = zil.commit().unwrap();
    if let WaitStatus::Pending {
        deadline_ns: Some(d),
        ..
    } = poll(&zil, w)
    {
        p.set_now_ns(d);
        zil.waiter_timeout(w).unwrap();
    }
    p.complete_all(&zil);
    assert_eq!(poll(&zil, w), WaitStatus::Done(Ok(())));
    let (n, ws) = waiters_left(&zil);
    assert_eq!(n, rzil::limits::COMMIT_WAITERS_MAX, "every slot came back");
    // A done waiter: released without a poll.
    p.complete_all(&zil);
    let w = ws[0];
    zil.waiter_abandon(w).unwrap();
    assert_eq!(zil.waiter_poll(w), Err(Error::StaleHandle));
}

/// Back-pressure leaves a waiter unlinked; abandoning it frees the slot
/// while its records stay queued for the next commit.
#[test]
fn an_abandoned_back_pressured_waiter_keeps_its_records_queued() {
    // Room for the first block and three more 4 KiB blocks.
    let p = MemPlatform::new(4 * 4096, 64);
    let zil = new_log(&p);
    let mut stuck = None;
    for i in 0..10u8 {
        zil.assign(1, &write_rec(&[i; 64])).unwrap();
        let w = zil.commit().unwrap();
        p.complete_all(&zil);
        if let WaitStatus::Pending {
            deadline_ns: Some(_),
            ..
        } = poll(&zil, w)
        {
            stuck = Some(w);
            break;
        }
    }
    let w = stuck.expect("the fourth commit waits for space");
    zil.waiter_abandon(w).unwrap();
    assert_eq!(zil.waiter_poll(w), Err(Error::StaleHandle));
    zil.checkpoint(u64::MAX).unwrap();
    // The next commit carries the abandoned one's record too.
    let w = zil.commit().unwrap();
    let mut done = None;
    for _ in 0..4 {
        p.complete_all(&zil);
        match poll(&zil, w) {
            WaitStatus::Done(r) => {
                done = Some(r);
                break;
            }
            WaitStatus::Pending {
                deadline_ns: Some(d),
                ..
            } => {
                p.set_now_ns(d);
                zil.waiter_timeout(w).unwrap();
            }
            WaitStatus::Pending {
                deadline_ns: None, ..
            } => {}
        }
    }
    assert_eq!(done, Some(Ok(())));
    let (recs, _) = p.durable_records(zil.chain_head().blkptr());
    assert_eq!(recs.len(), 1, "one record after the checkpoint: {recs:?}");
    assert_eq!(recs[0].2, [3u8; 64], "the abandoned commit's record");
}

#[test]
fn a_first_lr_seq_that_could_wrap_is_refused() {
    use rzil::limits::FIRST_LR_SEQ_MAX;
    let p = MemPlatform::new(64 * MIB, 64);
    // A corrupt superblock's checkpoint seq near u64::MAX used to start a
    // log whose seqs overflowed (a panic in debug, a wrap in release).
    for first_lr_seq in [FIRST_LR_SEQ_MAX + 1, u64::MAX] {
        let refused = Zil::new(
            &p,
            Config {
                first_lr_seq,
                ..Config::new(54)
            },
        );
        assert!(
            matches!(refused, Err(Error::InvalidRecord(why)) if why.contains("first_lr_seq")),
            "{first_lr_seq}"
        );
    }
    // The bound itself is a valid start: the first record follows it.
    let zil = Zil::new(
        &p,
        Config {
            first_lr_seq: FIRST_LR_SEQ_MAX,
            ..Config::new(54)
        },
    )
    .unwrap();
    zil.assign(1, &write_rec(&[1; 64])).unwrap();
    let w = zil.commit().unwrap();
    p.complete_all(&zil);
    assert_eq!(poll(&zil, w), WaitStatus::Done(Ok(())));
    assert_eq!(zil.durable_lr_seq(), FIRST_LR_SEQ_MAX + 1);
}

/// A waiter linked to an lwb stays linked when a later round of the same
/// commit meets back-pressure. The round that follows the link places the
/// records other committers queued meanwhile; if it cannot close the tail
/// for them (here: the lwb pool is exhausted), the records stay queued for
/// their own committers, and the waiter, whose records are in the issued
/// lwb, must not be marked "unlinked, retry". It was: its retry then linked
/// it into a second lwb's list while the first still held it, so one lwb's
/// signal ran on into the other's waiters (an acknowledgement before their
/// records were durable) and a reused slot cut a list short (a waiter never
/// woken: the host's "no commit completed" stall, seen with 64 committers of
/// 128 KiB records on a full disk).
///
/// Deterministic: lwb 1's fill is held at a barrier inside `get_data` while
/// another record is queued behind it.
#[test]
fn a_linked_waiter_stays_linked_when_a_later_round_meets_backpressure() {
    use std::sync::{Arc, Barrier};
    const GATED_FOID: u64 = 21;
    // The first lwb and its successor: the pool is full after one close.
    const LWBS_MAX: usize = 2;
    let p = MemPlatform::new(64 * MIB, LWBS_MAX);
    let gate = Arc::new(Barrier::new(2));
    p.st().get_data_gate = Some((GATED_FOID, gate.clone()));
    let zil = new_log(&p);
    let head = zil.chain_head().blkptr();
    // Bigger than the 4 KiB lwb 2 will be (but within zil_maxcopied): it
    // needs a close, and a third lwb.
    let big = vec![0x5a; 7 << 10];
    let wa = std::thread::scope(|s| {
        // A lone committer closes lwb 1 at once and stops inside its fill.
        let a = s.spawn(|| {
            zil.assign(
                1,
                &Record::Write {
                    foid: GATED_FOID,
                    offset: 0,
                    data: WriteData::NeedCopy { length: 512 },
                },
            )
            .unwrap();
            zil.commit().unwrap()
        });
        gate.wait();
        // Another committer's record, queued while lwb 1 fills. Checked
        // after the barrier, so that a failure fails the test instead of
        // leaving the filler at the barrier for good.
        let queued = zil.assign(1, &write_rec(&big));
        gate.wait();
        queued.unwrap();
        a.join().unwrap()
    });
    assert_eq!(
        states(&zil),
        [(1, LwbState::Issued), (2, LwbState::Opened)],
        "lwb 1 is out; the queued record could not get an lwb 3"
    );
    assert_eq!(p.st().lwbs_live, LWBS_MAX, "the pool is exhausted");
    assert_eq!(
        poll(&zil, wa),
        WaitStatus::Pending {
            deadline_ns: None,
            lwb_seq: Some(1)
        },
        "the waiter of lwb 1's record is still linked to lwb 1"
    );

    // What a committer does at a deadline, and what the back-pressure's end
    // lets through: none of it may disturb the waiter of lwb 1.
    p.st().lwbs_max = 64;
    zil.waiter_timeout(wa).unwrap();
    let wb = zil.commit().unwrap();
    // Every waiter is done only once its records are durable, and every
    // waiter is done once all I/O is.
    let mut waiters = vec![(wa, None), (wb, Some(big.clone()))];
    for round in 0u8..4 {
        let data = vec![round; 100];
        zil.assign(1, &write_rec(&data)).unwrap();
        waiters.push((zil.commit().unwrap(), Some(data)));
        // Deliver one completion at a time, oldest first.
        for _ in 0..2 {
            if p.pending_len() > 0 {
                p.complete(&zil, 0, Ok(()));
            }
        }
        let (durable, _) = p.durable_records(head);
        waiters.retain(|(w, data)| match poll(&zil, *w) {
            WaitStatus::Done(result) => {
                assert_eq!(result, Ok(()));
                if let Some(data) = data {
                    assert!(
                        durable.iter().any(|r| r.2 == *data),
                        "a waiter was told done before its record was durable"
                    );
                }
                false
            }
            WaitStatus::Pending { .. } => true,
        });
    }
    // Drain: time out the waiters of an open tail, complete every I/O.
    // Bounded: each pass issues the tail or finishes waiters.
    for _ in 0..8 {
        let (durable, _) = p.durable_records(head);
        waiters.retain(|(w, data)| match poll(&zil, *w) {
            WaitStatus::Done(result) => {
                assert_eq!(result, Ok(()));
                if let Some(data) = data {
                    assert!(durable.iter().any(|r| r.2 == *data), "a record lost");
                }
                false
            }
            WaitStatus::Pending { deadline_ns, .. } => {
                if deadline_ns.is_some() {
                    zil.waiter_timeout(*w).unwrap();
                }
                true
            }
        });
        p.complete_all(&zil);
    }
    assert!(waiters.is_empty(), "waiters left behind: {waiters:?}");
    check_transitions(&p, &zil);
}

/// A WR_NEED_COPY record that must be split needs one more itx for its
/// remainder. When the itx pool is empty and the open tail holds records,
/// the tail is closed, so that its fill frees their itxs, and the record
/// goes into the next lwb. It used to end the round with the waiter
/// unlinked and retrying while the tail kept its itxs: with a pool that
/// stays empty (nothing else frees an itx) the commit never completed.
#[test]
fn a_split_that_finds_the_itx_pool_empty_closes_the_tail() {
    let p = MemPlatform::new(64 * MIB, 64);
    let zil = new_log(&p);
    let head = zil.chain_head().blkptr();
    let small = vec![0x3c; 1000];
    zil.assign(1, &write_rec(&small)).unwrap();
    // Larger than what lwb 1 (4 KiB) has left: it would be split.
    zil.assign(
        1,
        &Record::Write {
            foid: 9,
            offset: 0,
            data: WriteData::NeedCopy { length: 20_000 },
        },
    )
    .unwrap();
    p.st().itx_pool_empty = true;
    let w = zil.commit().unwrap();
    // Bounded: each pass times the waiter out or completes I/O.
    let mut done = None;
    for _ in 0..16 {
        match poll(&zil, w) {
            WaitStatus::Done(r) => {
                done = Some(r);
                break;
            }
            WaitStatus::Pending { deadline_ns, .. } => {
                if let Some(d) = deadline_ns {
                    p.set_now_ns(d);
                    zil.waiter_timeout(w).unwrap();
                }
            }
        }
        p.complete_all(&zil);
    }
    assert_eq!(done, Some(Ok(())), "the commit never completed");
    let (durable, _) = p.durable_records(head);
    assert!(durable.iter().any(|r| r.2 == small), "the copied record");
    let want: Vec<u8> = (0..20_000).map(|i| pattern_byte(9, i)).collect();
    assert!(
        durable.iter().any(|r| r.2 == want),
        "the WR_NEED_COPY record, whole in one lwb"
    );
    assert_eq!(states(&zil).len(), 3, "lwb 1, lwb 2 and the new tail");
    check_transitions(&p, &zil);
}

/// `Config::commit_list_itxs_max` bounds the commit list (a platform with a
/// small itx pool keeps the pool larger than it), and must be in
/// [1, COMMIT_LIST_ITXS_MAX].
#[test]
fn commit_list_itxs_max_bounds_the_commit_list() {
    let p = MemPlatform::new(64 * MIB, 64);
    for bad in [0, rzil::limits::COMMIT_LIST_ITXS_MAX + 1] {
        let mut cfg = Config::new(54);
        cfg.commit_list_itxs_max = bad;
        assert!(
            matches!(Zil::new(&p, cfg), Err(Error::InvalidRecord(_))),
            "commit_list_itxs_max {bad} accepted"
        );
    }
    let mut cfg = Config::new(54);
    cfg.commit_list_itxs_max = 2;
    let zil = Zil::new(&p, cfg).unwrap();
    zil.assign(1, &write_rec(b"one")).unwrap();
    zil.assign(1, &write_rec(b"two")).unwrap();
    assert_eq!(
        zil.assign(1, &write_rec(b"three")),
        Err(Error::Backpressure(Limit::CommitListItxs))
    );
    // A commit drains the list; then there is room again.
    let w = zil.commit().unwrap();
    zil.assign(1, &write_rec(b"three")).unwrap();
    p.complete_all(&zil);
    assert_eq!(poll(&zil, w), WaitStatus::Done(Ok(())));
}

/// `durable_lr_seq` (`zl_commit_lr_seq`) names only records a replaying
/// reader will find. An lwb without waiters whose successor is ISSUED
/// defers its flushes into that successor (#15278): it reaches FLUSH_DONE
/// as soon as its write is done, with its block still in the device's
/// volatile cache. Its records are durable only once the successor's
/// flush is; until then they must not count as durable (ztest's "missing
/// log records" check), and a checkpoint at `durable_lr_seq` must not free
/// their lwb. Here the successor's flush fails: they never become durable.
#[test]
fn durable_lr_seq_waits_for_the_flush_an_lwb_deferred() {
    // Once with flushes that succeed, once with flushes that fail.
    for flush_result in [Ok(()), Err(IoError::Io)] {
        let p = MemPlatform::new(64 * MIB, 64);
        let zil = new_log(&p);
        let head = zil.chain_head().blkptr();
        let w = commit_spanning_lwbs(&zil);
        complete_writes_only(&p, &zil);
        assert!(zil.stats().flushes_deferred >= 1, "{:?}", zil.stats());
        let (durable, _) = p.durable_records(head);
        assert!(durable.is_empty(), "no flush has completed yet");
        assert_eq!(
            zil.durable_lr_seq(),
            0,
            "records in the volatile cache are not durable"
        );
        assert_eq!(
            zil.checkpoint(zil.durable_lr_seq()).unwrap().lwbs_freed,
            0,
            "a checkpoint at durable_lr_seq frees no lwb whose flush is pending"
        );
        // Now the flushes complete.
        for _ in 0..1000 {
            if p.pending_len() == 0 {
                break;
            }
            p.complete(&zil, 0, flush_result);
        }
        let (durable, _) = p.durable_records(head);
        let durable_max = durable.iter().map(|r| r.0).max().unwrap_or(0);
        assert!(
            zil.durable_lr_seq() <= durable_max,
            "durable_lr_seq {} but a reader finds records up to {durable_max}",
            zil.durable_lr_seq()
        );
        match flush_result {
            Ok(()) => {
                assert_eq!(poll(&zil, w), WaitStatus::Done(Ok(())));
                assert_eq!(zil.durable_lr_seq(), 30);
            }
            Err(_) => assert!(matches!(poll(&zil, w), WaitStatus::Done(Err(_)))),
        }
        check_transitions(&p, &zil);
    }
}
