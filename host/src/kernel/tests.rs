//! The kernel backend against a model of the module's ioctl layer
//! (`kmod/rzil_dev.c` + `rzil_kmod.c`): the same argument checks and
//! errnos, a log whose lwbs are only freed by checkpoints, and switches
//! for the failures the real module can answer.

use super::*;
use crate::backend::{check_pattern, drive, drive_with, DriveConfig};
use std::mem::size_of;

/// lwbs the model keeps before commits answer back-pressure.
const MODEL_LWBS_MAX: u64 = 8;

#[derive(Debug, Default)]
struct ModelState {
    attached: [Option<String>; RZIL_INSTANCES_MAX as usize],
    records: u64,
    bad_payloads: u64,
    commits: u64,
    /// Commits not yet freed by a checkpoint (one lwb each).
    lwbs_live: u64,
    checkpoints: u64,
    eagains: u64,
    detach_calls: u64,
}

#[derive(Debug, Default)]
struct Model {
    providers: Vec<&'static str>,
    state: Mutex<ModelState>,
    /// The module was built from a header whose structures are this much
    /// longer (another revision).
    size_skew: u32,
    /// Commit number (from 1) that fails with EIO.
    fail_commit_at: Option<u64>,
    /// Detach answers EBUSY this many times first.
    detach_busy: u64,
    /// Checkpoint fails with this errno.
    checkpoint_errno: Option<Errno>,
}

impl Model {
    fn with(providers: &[&'static str]) -> Model {
        Model {
            providers: providers.to_vec(),
            ..Model::default()
        }
    }

    fn size_ok<T>(&self, got: u32) -> Result<(), Errno> {
        if got as usize == size_of::<T>() + self.size_skew as usize {
            Ok(())
        } else {
            Err(libc::EINVAL)
        }
    }

    fn held(state: &ModelState, instance: u32) -> Result<(), Errno> {
        match state.attached.get(instance as usize) {
            None => Err(libc::EINVAL),
            Some(None) => Err(libc::ENXIO),
            Some(Some(_)) => Ok(()),
        }
    }
}

impl Control for Model {
    fn ioctl(&self, request: Request<'_>) -> Result<(), Errno> {
        let mut st = self.state.lock();
        match request {
            Request::Attach(ra) => {
                self.size_ok::<RzilIocAttach>(ra.ra_size)?;
                let name = ra.provider();
                if name.is_empty() || !ra.ra_provider.contains(&0) {
                    return Err(libc::EINVAL);
                }
                if !self.providers.contains(&name.as_str()) {
                    return Err(libc::ENOENT);
                }
                if st.attached.iter().flatten().any(|p| *p == name) {
                    return Err(libc::EBUSY);
                }
                let slot = st
                    .attached
                    .iter()
                    .position(Option::is_none)
                    .ok_or(libc::ENOSPC)?;
                st.attached[slot] = Some(name);
                ra.ra_instance = slot as u32;
                ra.ra_media_size_bytes = 1 << 30;
                ra.ra_sector_size_bytes = 512;
                Ok(())
            }
            Request::Append(rr) => {
                self.size_ok::<RzilIocAppend>(rr.rr_size)?;
                if rr.rr_payload_bytes == 0 {
                    return Err(libc::EINVAL);
                }
                if rr.rr_payload_bytes > RZIL_RECORD_BYTES_MAX {
                    return Err(libc::EFBIG);
                }
                Model::held(&st, rr.rr_instance)?;
                // SAFETY: the module's copyin(9): the backend under test
                // built `rr` from a slice it keeps alive across this call
                // (KernelLog::commit_record), of exactly this length.
                let payload = unsafe {
                    std::slice::from_raw_parts(
                        rr.rr_payload as usize as *const u8,
                        rr.rr_payload_bytes as usize,
                    )
                };
                if !check_pattern(rr.rr_foid, rr.rr_offset_bytes, payload) {
                    st.bad_payloads += 1;
                }
                st.records += 1;
                Ok(())
            }
            Request::Commit(rc) => {
                self.size_ok::<RzilIocCommit>(rc.rc_size)?;
                if rc.rc_foid != 0 {
                    return Err(libc::EINVAL);
                }
                Model::held(&st, rc.rc_instance)?;
                if st.lwbs_live >= MODEL_LWBS_MAX {
                    st.eagains += 1;
                    return Err(libc::EAGAIN);
                }
                st.commits += 1;
                if self.fail_commit_at == Some(st.commits) {
                    return Err(libc::EIO);
                }
                st.lwbs_live += 1;
                rc.rc_latency_ns = 1000 * st.commits;
                Ok(())
            }
            Request::Checkpoint(ri) => {
                self.size_ok::<RzilIocInstance>(ri.ri_size)?;
                Model::held(&st, ri.ri_instance)?;
                if let Some(errno) = self.checkpoint_errno {
                    return Err(errno);
                }
                st.lwbs_live = 0;
                st.checkpoints += 1;
                Ok(())
            }
            Request::Stats(rs) => {
                self.size_ok::<RzilIocStats>(rs.rs_size)?;
                Model::held(&st, rs.rs_instance)?;
                rs.rs_records = st.records;
                rs.rs_commits = st.commits;
                rs.rs_flushes = st.commits;
                rs.rs_lwbs_issued = st.commits;
                Ok(())
            }
            Request::Detach(ri) => {
                self.size_ok::<RzilIocInstance>(ri.ri_size)?;
                st.detach_calls += 1;
                Model::held(&st, ri.ri_instance)?;
                if st.detach_calls <= self.detach_busy {
                    return Err(libc::EBUSY);
                }
                st.attached[ri.ri_instance as usize] = None;
                Ok(())
            }
        }
    }
}

fn config(threads: usize, millis: u64) -> DriveConfig {
    DriveConfig {
        threads,
        duration: Duration::from_millis(millis),
        record_bytes: 4096,
    }
}

#[test]
fn a_run_attaches_commits_checkpoints_and_detaches() {
    let model = Model::with(&["md0"]);
    let (result, end) = with_kernel_log(&model, "md0", 4, |log| {
        assert_eq!(log.attached().instance, 0);
        drive(log, config(4, 300), &|_, _| {}, &mut |_| {})
    })
    .unwrap();
    let result = result.unwrap();
    let st = model.state.lock();
    assert!(
        result.commits > MODEL_LWBS_MAX,
        "{} commits",
        result.commits
    );
    // One append + one commit per acknowledged record, each payload the
    // record's own pattern at its own object and offset.
    assert_eq!(st.records, result.commits);
    assert_eq!(st.commits, result.commits);
    assert_eq!(st.bad_payloads, 0);
    // More commits than the model holds lwbs: only checkpoints let it on.
    assert!(st.checkpoints > 0);
    assert_eq!(st.attached[0], None, "detached at the end");
    assert_eq!(end.failure, None);
    assert_eq!(end.attached.media_size_bytes, 1 << 30);
    let stats = end.stats.unwrap();
    assert_eq!(stats.rs_commits, result.commits);
    assert_eq!(end.kernel_latency.count(), result.commits);
    assert!(end.kernel_latency.max_ns() >= 1000);
}

#[test]
fn back_pressure_without_the_checkpointer_is_retried_after_a_checkpoint() {
    // The commits below outrun any 1 ms checkpointer: EAGAIN must be met
    // by a checkpoint and a retry, not by failing the run.
    let model = Model::with(&["md0"]);
    let (result, end) = with_kernel_log(&model, "md0", 1, |log| {
        for seq in 0..(MODEL_LWBS_MAX * 4) {
            let id = RecordId { committer: 0, seq };
            let mut data = vec![0u8; 512];
            crate::backend::fill_pattern(id.foid(), id.offset_bytes(512), &mut data);
            log.commit(id, &data)?;
        }
        Ok::<(), CommitError>(())
    })
    .unwrap();
    result.unwrap();
    assert_eq!(end.failure, None);
    let st = model.state.lock();
    assert_eq!(st.commits, MODEL_LWBS_MAX * 4);
    assert_eq!(st.bad_payloads, 0);
}

#[test]
fn the_checkpointer_runs_while_the_body_does() {
    let model = Model::with(&["md0"]);
    let ((), end) = with_kernel_log(&model, "md0", 1, |_| {
        std::thread::sleep(CHECKPOINT_INTERVAL * 50);
    })
    .unwrap();
    assert_eq!(end.failure, None);
    // No commit asked for one: each came from the checkpointer (or the
    // last one before detach).
    assert!(model.state.lock().checkpoints >= 2);
}

#[test]
fn a_failed_commit_ends_the_run_with_the_errno_and_still_detaches() {
    let model = Model {
        fail_commit_at: Some(20),
        ..Model::with(&["md0"])
    };
    let (result, end) = with_kernel_log(&model, "md0", 2, |log| {
        drive(log, config(2, 10_000), &|_, _| {}, &mut |_| {})
    })
    .unwrap();
    let error = result.unwrap_err().to_string();
    assert!(error.contains("commit on md0 (instance 0)"), "{error}");
    assert!(error.contains("RZIL_IOC_COMMIT"), "{error}");
    assert!(error.contains("the log failed"), "{error}");
    assert_eq!(model.state.lock().attached[0], None);
    assert!(end.stats.is_some());
}

#[test]
fn unknown_busy_and_bad_providers_are_refused_with_a_reason() {
    let model = Model::with(&["md0"]);
    let error = with_kernel_log(&model, "md9", 1, |_| ()).unwrap_err();
    let text = error.to_string();
    assert!(text.starts_with("attach md9: RZIL_IOC_ATTACH"), "{text}");
    assert!(text.contains("no GEOM provider of that name"), "{text}");

    let (inner, _) = with_kernel_log(&model, "md0", 1, |_| {
        with_kernel_log(&model, "md0", 1, |_| ())
            .unwrap_err()
            .to_string()
    })
    .unwrap();
    assert!(
        inner.contains("attached to an rzil instance already"),
        "{inner}"
    );

    for (name, why) in [
        ("", "empty provider name"),
        ("md\u{0}0", "NUL"),
        (&"x".repeat(RZIL_PROVIDER_NAME_MAX) as &str, "at most 63"),
    ] {
        let text = with_kernel_log(&model, name, 1, |_| ())
            .unwrap_err()
            .to_string();
        assert!(
            text.starts_with("--provider: ") && text.contains(why),
            "{text}"
        );
    }
    // 63 bytes is the longest name the module takes: it gets as far as
    // the provider lookup.
    let text = with_kernel_log(&model, &"x".repeat(63), 1, |_| ())
        .unwrap_err()
        .to_string();
    assert!(text.contains("no GEOM provider"), "{text}");
    assert_eq!(model.state.lock().attached, [None, None, None, None]);
}

#[test]
fn a_module_of_another_header_revision_is_named_as_such() {
    let model = Model {
        size_skew: 8,
        ..Model::with(&["md0"])
    };
    let text = with_kernel_log(&model, "md0", 1, |_| ())
        .unwrap_err()
        .to_string();
    assert!(text.contains("Invalid argument"), "{text}");
    assert!(text.contains("disagree on rzil_ioctl.h"), "{text}");
}

#[test]
fn detach_waits_out_a_busy_instance() {
    let model = Model {
        detach_busy: 3,
        ..Model::with(&["md0"])
    };
    let ((), end) = with_kernel_log(&model, "md0", 1, |_| ()).unwrap();
    assert_eq!(end.failure, None);
    let st = model.state.lock();
    assert_eq!(st.detach_calls, 4);
    assert_eq!(st.attached[0], None);
}

#[test]
fn a_failing_checkpointer_stops_the_run_and_is_reported() {
    let model = Model {
        checkpoint_errno: Some(libc::EIO),
        ..Model::with(&["md0"])
    };
    let (result, end) = with_kernel_log(&model, "md0", 2, |log| {
        drive_with(
            log,
            config(2, 10_000),
            Duration::from_secs(5),
            &|| false,
            &|_, _| {},
            &mut |_| {},
        )
    })
    .unwrap();
    let error = result.unwrap_err().to_string();
    assert!(error.contains("checkpoint"), "{error}");
    let failure = end.failure.unwrap();
    assert!(failure.contains("RZIL_IOC_CHECKPOINT"), "{failure}");
    assert_eq!(model.state.lock().attached[0], None);
}

#[test]
fn records_over_the_module_limit_are_refused_before_any_ioctl() {
    let model = Model::with(&["md0"]);
    let (result, _) = with_kernel_log(&model, "md0", 1, |log| {
        log.commit(
            RecordId {
                committer: 0,
                seq: 0,
            },
            &vec![0u8; RZIL_RECORD_BYTES_MAX as usize + 1],
        )
    })
    .unwrap();
    assert!(matches!(
        result,
        Err(CommitError::RecordTooLarge {
            max_bytes: 7680,
            ..
        })
    ));
    assert_eq!(model.state.lock().records, 0);
}

#[test]
fn errno_hints_name_the_likely_cause() {
    let text = |request: &'static str, errno| {
        KernelError::Request {
            what: "x".into(),
            request,
            errno,
        }
        .to_string()
    };
    assert!(text("RZIL_IOC_ATTACH", libc::ENOSPC).contains("every instance"));
    assert!(text("RZIL_IOC_APPEND", libc::ENOTTY).contains("another revision"));
    assert!(text("RZIL_IOC_APPEND", libc::ENOTTY).contains("not rzil.ko's control device"));
    assert!(text("RZIL_IOC_COMMIT", libc::ENXIO).contains("no such instance"));
    // An errno without a hint still reads as one line with the OS text.
    let other = text("RZIL_IOC_COMMIT", libc::EDOM);
    assert!(other.starts_with("x: RZIL_IOC_COMMIT: "), "{other}");
    assert!(!other.contains('\n'));
    let open = KernelError::Open {
        path: "/dev/rzilctl".into(),
        source: io::Error::from_raw_os_error(libc::ENOENT),
    };
    assert!(open.to_string().contains("is rzil.ko loaded?"));
}

#[cfg(not(target_os = "freebsd"))]
#[test]
fn outside_freebsd_the_control_device_does_not_open() {
    let error = ControlDevice::open(Path::new(CONTROL_DEVICE_DEFAULT)).unwrap_err();
    assert!(matches!(error, KernelError::Unsupported { .. }));
    assert!(error.to_string().contains("FreeBSD"));
}
