//! GNU build-ids: the identity that ties a running kernel to the vmlinux describing it.
//!
//! The running kernel exposes its ELF notes raw in `/sys/kernel/notes`; a vmlinux carries the
//! same note in its `.notes` section.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Where the running kernel publishes its ELF notes.
pub const KERNEL_NOTES_PATH: &str = "/sys/kernel/notes";

const NT_GNU_BUILD_ID: u32 = 3;
const GNU_OWNER: &[u8] = b"GNU\0";

#[derive(Debug, Error)]
pub enum BuildIdError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} has no GNU build-id note")]
    Missing { path: String },
    #[error("`{text}` is not a build-id (expected an even number of hex digits)")]
    BadHex { text: String },
}

#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BuildId(Vec<u8>);

impl BuildId {
    pub fn new(bytes: Vec<u8>) -> BuildId {
        BuildId(bytes)
    }

    pub fn from_hex(text: &str) -> Result<BuildId, BuildIdError> {
        let bad = || BuildIdError::BadHex {
            text: text.to_string(),
        };
        if text.is_empty() || !text.len().is_multiple_of(2) || !text.is_ascii() {
            return Err(bad());
        }
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(|_| bad()))
            .collect::<Result<Vec<u8>, _>>()
            .map(BuildId)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Lowercase hex, the spelling debuginfod URLs and `readelf -n` use.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for BuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for BuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BuildId({})", self.to_hex())
    }
}

/// The build-id of the running kernel, from [`KERNEL_NOTES_PATH`].
pub fn running_kernel_build_id() -> Result<BuildId, BuildIdError> {
    build_id_from_notes_file(Path::new(KERNEL_NOTES_PATH))
}

/// Reads a file holding raw ELF notes (as `/sys/kernel/notes` does) and returns its build-id.
pub fn build_id_from_notes_file(path: &Path) -> Result<BuildId, BuildIdError> {
    let bytes = std::fs::read(path).map_err(|source| BuildIdError::Read {
        path: path.display().to_string(),
        source,
    })?;
    gnu_build_id_in_notes(&bytes).ok_or_else(|| BuildIdError::Missing {
        path: path.display().to_string(),
    })
}

/// Finds the GNU build-id note in a sequence of native-endian ELF notes (4-byte aligned, as
/// the kernel lays them out). A truncated note ends the search rather than reading past it.
pub fn gnu_build_id_in_notes(mut notes: &[u8]) -> Option<BuildId> {
    let word = |b: &[u8], at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
    };
    while notes.len() >= 12 {
        let name_size = word(notes, 0)? as usize;
        let desc_size = word(notes, 4)? as usize;
        let kind = word(notes, 8)?;
        let name_start: usize = 12;
        let desc_start = name_start.checked_add(align4(name_size)?)?;
        let next = desc_start.checked_add(align4(desc_size)?)?;
        let name = notes.get(name_start..name_start + name_size)?;
        let desc = notes.get(desc_start..desc_start.checked_add(desc_size)?)?;
        if kind == NT_GNU_BUILD_ID && name == GNU_OWNER && !desc.is_empty() {
            return Some(BuildId(desc.to_vec()));
        }
        notes = notes.get(next..)?;
    }
    None
}

fn align4(n: usize) -> Option<usize> {
    n.checked_add(3).map(|v| v & !3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(name: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(name.len() as u32).to_ne_bytes());
        out.extend_from_slice(&(desc.len() as u32).to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(name);
        out.resize(out.len().next_multiple_of(4), 0);
        out.extend_from_slice(desc);
        out.resize(out.len().next_multiple_of(4), 0);
        out
    }

    #[test]
    fn finds_build_id_after_other_notes() {
        let mut notes = note(b"Xen\0", 6, b"linux\0");
        notes.extend(note(b"Linux\0", 1, &[1, 1, 0, 0]));
        notes.extend(note(b"GNU\0", 3, &[0xde, 0xad, 0xbe, 0xef, 0x01]));
        let id = gnu_build_id_in_notes(&notes).unwrap();
        assert_eq!(id.to_hex(), "deadbeef01");
    }

    #[test]
    fn ignores_build_id_type_from_other_owner() {
        let notes = note(b"Xen\0", 3, &[1, 2, 3, 4]);
        assert_eq!(gnu_build_id_in_notes(&notes), None);
    }

    #[test]
    fn truncated_notes_yield_none() {
        let notes = note(b"GNU\0", 3, &[9; 20]);
        assert_eq!(gnu_build_id_in_notes(&notes[..notes.len() - 4]), None);
        assert_eq!(gnu_build_id_in_notes(&notes[..7]), None);
        assert_eq!(gnu_build_id_in_notes(&[]), None);
    }

    #[test]
    fn huge_sizes_do_not_overflow() {
        let mut notes = Vec::new();
        notes.extend_from_slice(&u32::MAX.to_ne_bytes());
        notes.extend_from_slice(&u32::MAX.to_ne_bytes());
        notes.extend_from_slice(&3u32.to_ne_bytes());
        assert_eq!(gnu_build_id_in_notes(&notes), None);
    }

    #[test]
    fn hex_round_trip_and_errors() {
        let id = BuildId::from_hex("4a5a9b0aFF").unwrap();
        assert_eq!(id.as_bytes(), &[0x4a, 0x5a, 0x9b, 0x0a, 0xff]);
        assert_eq!(id.to_string(), "4a5a9b0aff");
        assert!(BuildId::from_hex("abc").is_err());
        assert!(BuildId::from_hex("zz").is_err());
        assert!(BuildId::from_hex("").is_err());
        assert!(BuildId::from_hex("éé").is_err());
    }

    #[test]
    fn running_kernel_notes_have_a_build_id() {
        // Every kernel built with a GNU toolchain since 2.6.23 exports this file.
        if !Path::new(KERNEL_NOTES_PATH).exists() {
            eprintln!("skipped: no {KERNEL_NOTES_PATH}");
            return;
        }
        let id = running_kernel_build_id().unwrap();
        assert!(id.as_bytes().len() >= 16, "{id}");
    }

    #[test]
    fn missing_notes_file_is_a_read_error() {
        let err = build_id_from_notes_file(Path::new("/nonexistent/notes")).unwrap_err();
        assert!(matches!(err, BuildIdError::Read { .. }), "{err}");
    }
}
