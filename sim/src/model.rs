//! placeholder
use crate::{BugName, FaultSet, SeedOutcome};
/// Run one seed of the OpenZFS 2.2.0 model.
pub fn run(
    _seed: u64,
    _bug: Option<BugName>,
    _faults: &FaultSet,
    _steps: u32,
    _trace: bool,
) -> SeedOutcome {
    SeedOutcome::default()
}
