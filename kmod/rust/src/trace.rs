//! lwb state transitions for the shim's counters (`kern.rzil.stats.
//! lwb_entered`) and its SDT probe (`rzil::lwb:state`).
//!
//! The core has no state-change hook in `Platform`, but it shows every lwb
//! and its state through `Zil::for_each_lwb`, and an lwb takes the states
//! only in their declared order (`LwbState`, NEW → … → FLUSH_DONE). So
//! after each call into the core the tracer compares the lwbs it sees now
//! with those it saw last time and reports every step in between, in
//! order: an lwb that went from OPENED to ISSUED within one commit is
//! reported as OPENED→CLOSED, CLOSED→READY, READY→ISSUED.

use crate::ffi;
use rzil::limits::LWB_INFLIGHT_MAX;
use rzil::lwb::LwbState;

/// What the tracer remembers of one lwb.
#[derive(Clone, Copy, Debug, Default)]
struct Seen {
    seq: u64,
    state: u8,
}

/// The lwbs seen after the last call into the core; guarded by the
/// instance's tracer mutex.
#[derive(Debug)]
pub struct Tracer {
    seen: [Seen; LWB_INFLIGHT_MAX],
    count: usize,
}

impl Default for Tracer {
    fn default() -> Self {
        Self::new()
    }
}

impl Tracer {
    /// Nothing seen yet.
    pub const fn new() -> Self {
        Tracer {
            seen: [Seen { seq: 0, state: 0 }; LWB_INFLIGHT_MAX],
            count: 0,
        }
    }

    fn previous(&self, seq: u64) -> Option<u8> {
        self.seen[..self.count]
            .iter()
            .find(|s| s.seq == seq)
            .map(|s| s.state)
    }

    /// Compare `now` (the core's lwbs, oldest first) with what was seen
    /// and report each step to `report(seq, from, to)`. An lwb seen for
    /// the first time is reported as entering NEW first.
    pub fn update(&mut self, now: &[(u64, LwbState)], mut report: impl FnMut(u64, Option<u8>, u8)) {
        for &(seq, state) in now {
            let to = state as u8;
            let from = self.previous(seq);
            let mut at = match from {
                Some(s) => s,
                None => {
                    report(seq, None, LwbState::New as u8);
                    LwbState::New as u8
                }
            };
            while at < to {
                report(seq, Some(at), at + 1);
                at += 1;
            }
        }
        self.count = now.len().min(LWB_INFLIGHT_MAX);
        for (slot, &(seq, state)) in self.seen.iter_mut().zip(now.iter()) {
            *slot = Seen {
                seq,
                state: state as u8,
            };
        }
    }
}

/// Hand one step to the shim (counters + SDT probe).
///
/// # Safety
///
/// `sc` must be the live softc of the instance the lwb belongs to.
pub unsafe fn report_to_shim(sc: *mut ffi::rzil_softc, seq: u64, from: Option<u8>, to: u8) {
    // The probe's `from` for a newly seen lwb is NEW as well.
    let from = u32::from(from.unwrap_or(to));
    // SAFETY: caller's contract: `sc` is live; the shim only bumps a
    // counter and fires an SDT probe.
    unsafe { ffi::rzil_shim_lwb_state(sc, seq, from, u32::from(to)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn steps(t: &mut Tracer, now: &[(u64, LwbState)]) -> Vec<(u64, Option<u8>, u8)> {
        let mut out = Vec::new();
        t.update(now, |seq, from, to| out.push((seq, from, to)));
        out
    }

    #[test]
    fn new_lwb_enters_new_then_each_state_in_order() {
        let mut t = Tracer::new();
        let got = steps(&mut t, &[(1, LwbState::Ready)]);
        assert_eq!(
            got,
            [
                (1, None, 0),
                (1, Some(0), 1),
                (1, Some(1), 2),
                (1, Some(2), 3)
            ]
        );
    }

    #[test]
    fn only_new_steps_are_reported_and_freed_lwbs_are_forgotten() {
        let mut t = Tracer::new();
        steps(&mut t, &[(1, LwbState::Issued), (2, LwbState::Opened)]);
        let got = steps(&mut t, &[(1, LwbState::FlushDone), (2, LwbState::Opened)]);
        assert_eq!(got, [(1, Some(4), 5), (1, Some(5), 6)]);
        // lwb 1 freed by a checkpoint; lwb 2 moves on.
        let got = steps(&mut t, &[(2, LwbState::Closed)]);
        assert_eq!(got, [(2, Some(1), 2)]);
        // A reused sequence number would be a new lwb again.
        let got = steps(&mut t, &[(1, LwbState::New), (2, LwbState::Closed)]);
        assert_eq!(got, [(1, None, 0)]);
    }
}
