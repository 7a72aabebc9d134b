//! A log volume: a [`LogDevice`] plus our superblock, opened the way every
//! subcommand that writes needs it. This is where "holds something else"
//! is decided: a blank device is formatted, ours is opened, anything else is
//! refused unless `--create` says to format over it.

use std::fmt;
use std::path::Path;

use crate::device::{DeviceError, LogDevice, OpenOptionsLog};
use crate::superblock::{self, Probe, Superblock, SuperblockError};

/// The objset id rzil puts in its chain verifier: rzil logs are not inside a
/// pool, so this only has to be stable (it matches ZFS's first user objset).
pub const OBJSET_ID: u64 = 54;

/// Why a volume could not be opened.
#[derive(Debug)]
pub enum VolumeError {
    /// The device itself (missing, directory, read-only, too small, ...).
    Device(DeviceError),
    /// The device holds something that is not an rzil log.
    Foreign { path: String, what: String },
    /// Our superblock is corrupt or does not fit the device.
    Superblock {
        path: String,
        error: SuperblockError,
    },
    /// `--create --size` would resize (so reformat) a file whose log still
    /// holds records no run has recovered.
    ResizeWouldDiscard { path: String, records: u64 },
}

impl fmt::Display for VolumeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VolumeError::Device(error) => error.fmt(f),
            VolumeError::Foreign { path, what } => write!(
                f,
                "{path}: holds {what}, not an rzil log; refusing to overwrite it without --create"
            ),
            VolumeError::Superblock { path, error } => write!(f, "{path}: {error}"),
            VolumeError::ResizeWouldDiscard { path, records } => write!(
                f,
                "{path}: its rzil log holds {records} records not yet recovered, which --size would discard by reformatting it; run once without --size to recover them first"
            ),
        }
    }
}

impl std::error::Error for VolumeError {}

impl From<DeviceError> for VolumeError {
    fn from(error: DeviceError) -> Self {
        VolumeError::Device(error)
    }
}

/// An open, formatted log device and its current superblock.
#[derive(Debug)]
pub struct Volume {
    /// The device.
    pub device: LogDevice,
    /// The newest valid superblock.
    pub superblock: Superblock,
    /// Which slot holds it (the next update goes to the other one).
    pub slot: usize,
    /// Whether this open formatted the device.
    pub formatted: bool,
}

impl Volume {
    /// Open `path` as a log volume; format it when blank, or when `create`
    /// is set and it holds something else (including a corrupt rzil log).
    pub fn open(path: &Path, options: OpenOptionsLog) -> Result<Volume, VolumeError> {
        if let (true, Some(size_bytes)) = (options.create, options.create_size_bytes) {
            refuse_resize_over_records(path, size_bytes)?;
        }
        let device = LogDevice::open(path, options)?;
        let superblock_error = |error| VolumeError::Superblock {
            path: path.display().to_string(),
            error,
        };
        let probed = match superblock::probe(&device) {
            Ok(probed) => probed,
            Err(_) if options.create => Probe::Blank,
            Err(error) => return Err(superblock_error(error)),
        };
        match probed {
            Probe::Ours { superblock, slot } if !(options.create && device.was_created()) => {
                Ok(Volume {
                    device,
                    superblock,
                    slot,
                    formatted: false,
                })
            }
            Probe::Foreign { what } if !options.create => Err(VolumeError::Foreign {
                path: path.display().to_string(),
                what,
            }),
            _ => {
                let verifier = [random_u64(), random_u64(), OBJSET_ID, 1];
                let mut superblock =
                    Superblock::fresh(device.size_bytes(), verifier).map_err(superblock_error)?;
                let slot =
                    superblock::format(&device, &mut superblock).map_err(superblock_error)?;
                Ok(Volume {
                    device,
                    superblock,
                    slot,
                    formatted: true,
                })
            }
        }
    }

    /// Persist `self.superblock` as the next generation (torn-write safe).
    pub fn write_superblock(&mut self) -> Result<(), SuperblockError> {
        self.slot = superblock::write_next(&self.device, &mut self.superblock, Some(self.slot))?;
        Ok(())
    }
}

/// `--create --size` resizes an existing file by formatting it anew (see
/// [`LogDevice::open`]). Over our own log that is fine once every record
/// is checkpointed, but records still in its chain were acknowledged and
/// would be lost unreplayed: refuse then. Anything that cannot be read as
/// such a log is left to the open that follows.
fn refuse_resize_over_records(path: &Path, size_bytes: u64) -> Result<(), VolumeError> {
    let Ok(device) = crate::device::ReadOnlyDevice::open(path) else {
        return Ok(());
    };
    let is_file = std::fs::metadata(path).is_ok_and(|meta| meta.is_file());
    if !is_file || device.size_bytes() == size_bytes {
        return Ok(());
    }
    let Ok(Probe::Ours { superblock, .. }) = superblock::probe(&device) else {
        return Ok(());
    };
    let replayed = crate::verify::replay(&device, &superblock);
    let records = replayed.pieces.len() as u64 + replayed.other_records;
    if records > 0 {
        return Err(VolumeError::ResizeWouldDiscard {
            path: path.display().to_string(),
            records,
        });
    }
    Ok(())
}

/// A random 64-bit value for GUIDs: from the OS (`/dev/urandom`), falling
/// back to time and pid through splitmix64 where that is unavailable. GUIDs
/// only need to differ between formats, not to be secret.
pub fn random_u64() -> u64 {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_ok()
    {
        return u64::from_le_bytes(bytes);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    crate::rng::SplitMix64::new(nanos ^ u64::from(std::process::id())).next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{scratch_dir, BlockIo};

    fn opts(create: bool) -> OpenOptionsLog {
        OpenOptionsLog {
            create,
            create_size_bytes: Some(4 * 1024 * 1024),
            direct: false,
        }
    }

    #[test]
    fn create_formats_and_reopen_finds_it() {
        let dir = scratch_dir("vol-reopen");
        let path = dir.join("dev");
        let mut vol = Volume::open(&path, opts(true)).unwrap();
        assert!(vol.formatted);
        vol.superblock.checkpoint_lr_seq = 12;
        vol.write_superblock().unwrap();
        let verifier = vol.superblock.chain_verifier;
        drop(vol);
        let vol = Volume::open(&path, opts(false)).unwrap();
        assert!(!vol.formatted);
        assert_eq!(vol.superblock.checkpoint_lr_seq, 12);
        assert_eq!(vol.superblock.chain_verifier, verifier);
        assert_eq!(vol.superblock.generation, 3);
    }

    #[test]
    fn foreign_device_needs_create() {
        let dir = scratch_dir("vol-foreign");
        let path = dir.join("dev");
        let mut data = vec![0u8; 4 * 1024 * 1024];
        data[..11].copy_from_slice(b"not a log!!");
        std::fs::write(&path, &data).unwrap();
        let err = Volume::open(&path, opts(false)).unwrap_err();
        assert!(matches!(err, VolumeError::Foreign { .. }), "{err}");
        assert!(err.to_string().contains("without --create"), "{err}");
        // Nothing was written: the foreign bytes are still there.
        assert_eq!(&std::fs::read(&path).unwrap()[..11], b"not a log!!");
        let vol = Volume::open(&path, opts(true)).unwrap();
        assert!(vol.formatted);
    }

    #[test]
    fn corrupt_superblock_is_refused_then_reformatted_with_create() {
        let dir = scratch_dir("vol-corrupt");
        let path = dir.join("dev");
        let vol = Volume::open(&path, opts(true)).unwrap();
        for offset in superblock::SLOT_OFFSETS_BYTES {
            let mut buf = crate::device::AlignedBuf::zeroed(4096);
            vol.device.read_at(offset, &mut buf).unwrap();
            buf[30] ^= 1;
            vol.device.write_at(offset, &buf).unwrap();
        }
        drop(vol);
        let err = Volume::open(&path, opts(false)).unwrap_err();
        assert!(err.to_string().contains("corrupt rzil superblock"), "{err}");
        assert!(Volume::open(&path, opts(true)).unwrap().formatted);
    }

    #[test]
    fn guids_differ() {
        assert_ne!(random_u64(), random_u64());
    }
}
