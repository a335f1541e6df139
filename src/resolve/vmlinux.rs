//! A kernel image with debug info, mapped read-only: its build-id, its ELF symbols and its
//! DWARF sections. Sections are borrowed from the mapping, so opening a 590 MB vmlinux reads
//! only its headers; compressed debug sections (`SHF_COMPRESSED`) are inflated on open.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use object::{Object, ObjectSection, ObjectSymbol};
use thiserror::Error;

use super::build_id::BuildId;

#[derive(Debug, Error)]
pub enum VmlinuxError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is truncated: {len} bytes, but its ELF headers describe {needed} bytes")]
    Truncated {
        path: PathBuf,
        len: u64,
        needed: u64,
    },
    #[error("{path} is not a valid ELF file: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "{path} has no DWARF debug info (no .debug_info section); it is a stripped kernel image"
    )]
    NoDwarf { path: PathBuf },
    #[error("{path} has no GNU build-id note, so it cannot be matched to the running kernel")]
    NoBuildId { path: PathBuf },
}

/// An opened, validated vmlinux.
pub struct Vmlinux {
    path: PathBuf,
    map: Mmap,
    build_id: BuildId,
    dwarf_sections: HashMap<&'static str, SectionBytes>,
}

enum SectionBytes {
    /// In bounds of the mapping: checked on open.
    Mapped(Range<usize>),
    Inflated(Vec<u8>),
}

impl Vmlinux {
    /// Maps `path` and checks that it is a whole ELF file with a build-id and DWARF.
    pub fn open(path: &Path) -> Result<Vmlinux, VmlinuxError> {
        let open_error = |source| VmlinuxError::Open {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(open_error)?;
        // SAFETY: the mapping is read-only and private; debug files are not rewritten in place
        // (our own cache replaces them by rename), so the bytes do not change under us.
        let map = unsafe { Mmap::map(&file) }.map_err(open_error)?;
        let (build_id, dwarf_sections) = validate(path, &map)?;
        Ok(Vmlinux {
            path: path.to_path_buf(),
            map,
            build_id,
            dwarf_sections,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn build_id(&self) -> &BuildId {
        &self.build_id
    }

    fn elf(&self) -> Result<object::File<'_>, VmlinuxError> {
        object::File::parse(&*self.map).map_err(|e| VmlinuxError::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })
    }

    /// The bytes of a DWARF section, empty when the file does not have it (as gimli expects).
    pub fn dwarf_section(&self, id: gimli::SectionId) -> &[u8] {
        match self.dwarf_sections.get(id.name()) {
            Some(SectionBytes::Mapped(range)) => &self.map[range.clone()],
            Some(SectionBytes::Inflated(bytes)) => bytes,
            None => &[],
        }
    }

    /// The link-time address of a symbol, e.g. `_text`, to compare with `/proc/kallsyms` and
    /// learn the KASLR slide.
    pub fn symbol_address(&self, name: &str) -> Result<Option<u64>, VmlinuxError> {
        Ok(self
            .elf()?
            .symbols()
            .find(|s| s.name() == Ok(name))
            .map(|s| s.address()))
    }

    /// For each address in `addresses`, the names of the ELF symbols defined there.
    pub fn symbols_at(
        &self,
        addresses: &HashSet<u64>,
    ) -> Result<HashMap<u64, Vec<String>>, VmlinuxError> {
        let mut found: HashMap<u64, Vec<String>> = HashMap::new();
        for symbol in self.elf()?.symbols() {
            if addresses.contains(&symbol.address()) {
                if let Ok(name) = symbol.name() {
                    found
                        .entry(symbol.address())
                        .or_default()
                        .push(name.to_string());
                }
            }
        }
        Ok(found)
    }
}

type Validated = (BuildId, HashMap<&'static str, SectionBytes>);

fn validate(path: &Path, bytes: &[u8]) -> Result<Validated, VmlinuxError> {
    let corrupt = |reason: String| VmlinuxError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let truncated = |needed: u64| VmlinuxError::Truncated {
        path: path.to_path_buf(),
        len: bytes.len() as u64,
        needed,
    };
    if !bytes.starts_with(b"\x7fELF") {
        return Err(corrupt("no ELF magic number".to_string()));
    }
    if let Some(needed) = section_headers_end(bytes).filter(|&end| end > bytes.len() as u64) {
        return Err(truncated(needed));
    }
    let elf = object::File::parse(bytes).map_err(|e| corrupt(e.to_string()))?;
    for section in elf.sections() {
        if let Some((offset, size)) = section.file_range() {
            let end = offset.saturating_add(size);
            if end > bytes.len() as u64 {
                return Err(truncated(end));
            }
        }
    }
    if elf.section_by_name(".debug_info").is_none() {
        return Err(VmlinuxError::NoDwarf {
            path: path.to_path_buf(),
        });
    }
    let build_id = match elf.build_id() {
        Ok(Some(id)) if !id.is_empty() => BuildId::new(id.to_vec()),
        Ok(_) => {
            return Err(VmlinuxError::NoBuildId {
                path: path.to_path_buf(),
            })
        }
        Err(e) => return Err(corrupt(e.to_string())),
    };
    let mut dwarf_sections = HashMap::new();
    for id in DWARF_SECTIONS {
        let name = id.name();
        let Some(section) = elf.section_by_name(name) else {
            continue;
        };
        let data = section
            .uncompressed_data()
            .map_err(|e| corrupt(format!("section {name}: {e}")))?;
        let bytes = match (data, section.file_range()) {
            (Cow::Owned(inflated), _) => SectionBytes::Inflated(inflated),
            (Cow::Borrowed(_), Some((offset, size))) => {
                SectionBytes::Mapped(offset as usize..(offset + size) as usize)
            }
            (Cow::Borrowed(_), None) => continue,
        };
        dwarf_sections.insert(name, bytes);
    }
    Ok((build_id, dwarf_sections))
}

/// End offset of the section header table of an ELF64 or ELF32 file, from its raw header;
/// the table sits at the end of a vmlinux, so a cut-off copy shows here first.
fn section_headers_end(bytes: &[u8]) -> Option<u64> {
    let is_64 = *bytes.get(4)? == 2;
    let little = *bytes.get(5)? == 1;
    let read = |at: usize, len: usize| -> Option<u64> {
        let raw = bytes.get(at..at + len)?;
        let mut value = 0u64;
        for (i, &b) in raw.iter().enumerate() {
            let shift = if little { i } else { len - 1 - i } * 8;
            value |= u64::from(b) << shift;
        }
        Some(value)
    };
    let (shoff, shentsize, shnum) = if is_64 {
        (read(0x28, 8)?, read(0x3a, 2)?, read(0x3c, 2)?)
    } else {
        (read(0x20, 4)?, read(0x2e, 2)?, read(0x30, 2)?)
    };
    shoff.checked_add(shentsize.checked_mul(shnum)?)
}

/// The DWARF sections the function index reads.
pub const DWARF_SECTIONS: [gimli::SectionId; 9] = [
    gimli::SectionId::DebugAbbrev,
    gimli::SectionId::DebugInfo,
    gimli::SectionId::DebugLine,
    gimli::SectionId::DebugLineStr,
    gimli::SectionId::DebugStr,
    gimli::SectionId::DebugStrOffsets,
    gimli::SectionId::DebugAddr,
    gimli::SectionId::DebugRanges,
    gimli::SectionId::DebugRngLists,
];
