//! Source-level functions from a vmlinux's DWARF, read one compile unit at a time.
//!
//! Two passes of different cost: [`unit_files`] reads only each unit's line-program header
//! (the table `DW_AT_decl_file` indexes), which is enough to know which units can declare a
//! function of a given file; [`unit_functions`] walks one unit's DIEs.

use std::collections::{HashMap, HashSet};

use gimli::{AttributeValue, DebugInfoOffset, EndianSlice, LittleEndian, UnitOffset};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::vmlinux::Vmlinux;

type Reader<'a> = EndianSlice<'a, LittleEndian>;
type Dwarf<'a> = gimli::Dwarf<Reader<'a>>;
type Unit<'a> = gimli::Unit<Reader<'a>>;

#[derive(Debug, Error)]
pub enum DwarfError {
    #[error("malformed DWARF in {path} at .debug_info offset {unit_offset:#x}: {source}")]
    Malformed {
        path: String,
        unit_offset: usize,
        source: gimli::Error,
    },
}

/// A function as SystemTap's `kernel.function("NAME@FILE")` sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFunction {
    pub name: String,
    /// The declaring file relative to the build directory, e.g. `net/socket.c`.
    pub decl_file: String,
    pub decl_line: u32,
    /// Link-time (unrelocated) address of the out-of-line body; `None` when only inlined.
    pub entry_address: Option<u64>,
    /// The function has inlined instances.
    pub inlined: bool,
    pub parameters: Vec<Parameter>,
}

/// A formal parameter, as `stap -L` lists it (`$name:type`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parameter {
    pub name: String,
    pub type_name: String,
}

/// The source files a compile unit's DIEs can refer to, indexed by DWARF file number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitFiles {
    /// Offset of the unit in `.debug_info`.
    pub unit_offset: usize,
    pub files: Vec<String>,
}

fn load(vmlinux: &Vmlinux) -> Dwarf<'_> {
    let no_error: Result<Dwarf<'_>, std::convert::Infallible> =
        gimli::Dwarf::load(|id| Ok(EndianSlice::new(vmlinux.dwarf_section(id), LittleEndian)));
    match no_error {
        Ok(dwarf) => dwarf,
        Err(never) => match never {},
    }
}

fn malformed(vmlinux: &Vmlinux, unit_offset: usize) -> impl Fn(gimli::Error) -> DwarfError + '_ {
    move |source| DwarfError::Malformed {
        path: vmlinux.path().display().to_string(),
        unit_offset,
        source,
    }
}

/// Every compile unit with its file table. Reads unit headers, abbreviations and line-program
/// headers, but no DIE beyond each unit's root.
pub fn unit_files(vmlinux: &Vmlinux) -> Result<Vec<UnitFiles>, DwarfError> {
    let dwarf = load(vmlinux);
    let mut units = Vec::new();
    let mut headers = dwarf.units();
    while let Some(header) = headers.next().map_err(malformed(vmlinux, 0))? {
        let unit_offset = header.debug_info_offset().map_or(0, |offset| offset.0);
        let unit = dwarf
            .unit(header)
            .map_err(malformed(vmlinux, unit_offset))?;
        let files = file_table(&dwarf, &unit).map_err(malformed(vmlinux, unit_offset))?;
        units.push(UnitFiles { unit_offset, files });
    }
    Ok(units)
}

/// The unit's files as SystemTap prints them: relative to the compilation directory.
fn file_table(dwarf: &Dwarf<'_>, unit: &Unit<'_>) -> gimli::Result<Vec<String>> {
    let Some(program) = &unit.line_program else {
        return Ok(Vec::new());
    };
    let header = program.header();
    let comp_dir = unit
        .comp_dir
        .map(|dir| dir.to_string_lossy().into_owned())
        .unwrap_or_default();
    // DWARF 5 numbers files from 0 (the primary file); earlier versions from 1.
    let first = if header.version() <= 4 { 1 } else { 0 };
    let count = header.file_names().len() as u64 + first;
    let mut files = Vec::with_capacity(count as usize);
    for index in 0..count {
        let Some(file) = header.file(index) else {
            files.push(String::new());
            continue;
        };
        let name = dwarf.attr_string(unit, file.path_name())?;
        let dir = match file.directory(header) {
            Some(dir) => Some(dwarf.attr_string(unit, dir)?),
            None => None,
        };
        files.push(display_path(
            &comp_dir,
            dir.map(|d| d.to_string_lossy()).as_deref(),
            &name.to_string_lossy(),
        ));
    }
    Ok(files)
}

fn display_path(comp_dir: &str, dir: Option<&str>, name: &str) -> String {
    let joined = match dir {
        Some(dir) if !dir.is_empty() && !name.starts_with('/') => format!("{dir}/{name}"),
        _ => name.to_string(),
    };
    match joined.strip_prefix(comp_dir) {
        Some(rest) if !comp_dir.is_empty() && rest.starts_with('/') => rest[1..].to_string(),
        _ => joined,
    }
}

/// What one `DW_TAG_subprogram` DIE says by itself; absent attributes come from its origin.
#[derive(Default)]
struct SubprogramDie {
    name: Option<String>,
    decl_file: Option<u64>,
    decl_line: Option<u32>,
    /// `DW_AT_abstract_origin` or `DW_AT_specification`.
    origin: Option<UnitOffset>,
    entry: Option<u64>,
    declares_inlined: bool,
    is_declaration: bool,
    parameters: Vec<ParameterDie>,
}

struct ParameterDie {
    offset: UnitOffset,
    name: Option<String>,
    type_ref: Option<UnitOffset>,
    origin: Option<UnitOffset>,
}

/// Longest origin chain followed; real chains have two or three links, and a bound keeps a
/// malformed cyclic chain from hanging the walk.
const MAX_ORIGIN_HOPS: usize = 8;

/// The functions one compile unit defines or inlines, with the unit's file table. Functions
/// whose entry address is 0 (bodies discarded by the linker) are left out.
pub fn unit_functions(
    vmlinux: &Vmlinux,
    unit_offset: usize,
) -> Result<Vec<SourceFunction>, DwarfError> {
    let error = malformed(vmlinux, unit_offset);
    let dwarf = load(vmlinux);
    let header = dwarf
        .debug_info
        .header_from_offset(DebugInfoOffset(unit_offset))
        .map_err(&error)?;
    let unit = dwarf.unit(header).map_err(&error)?;
    let files = file_table(&dwarf, &unit).map_err(&error)?;
    let dies = subprogram_dies(&dwarf, &unit).map_err(&error)?;
    let types = TypeNamer {
        dwarf: &dwarf,
        unit: &unit,
    };

    let mut functions = Vec::new();
    for (&offset, die) in &dies {
        if die.is_declaration {
            continue;
        }
        let chain = origin_chain(&dies, offset);
        let root = chain.last().map_or(die, |o| &dies[o]);
        let inherit = |pick: &dyn Fn(&SubprogramDie) -> bool| chain.iter().find(|o| pick(&dies[o]));
        let Some(name) = inherit(&|d| d.name.is_some()).and_then(|o| dies[o].name.clone()) else {
            continue;
        };
        let decl_file = inherit(&|d| d.decl_file.is_some())
            .and_then(|o| dies[o].decl_file)
            .and_then(|index| files.get(index as usize).cloned())
            .unwrap_or_default();
        let decl_line = inherit(&|d| d.decl_line.is_some())
            .and_then(|o| dies[o].decl_line)
            .unwrap_or(0);
        let inlined = chain.iter().any(|o| dies[o].declares_inlined);
        let is_abstract_root = root.declares_inlined && std::ptr::eq(root, die);
        let entry_address = match die.entry {
            Some(0) => continue,
            Some(address) => Some(address),
            // An abstract root describes the inlined copies, not an out-of-line body.
            None if is_abstract_root => None,
            None => continue,
        };
        let parameters = parameters(&dies, &chain, &types);
        functions.push(SourceFunction {
            name,
            decl_file,
            decl_line,
            entry_address,
            inlined,
            parameters,
        });
    }
    drop_roots_with_bodies(&mut functions);
    functions.sort_by(|a, b| (&a.name, a.entry_address).cmp(&(&b.name, b.entry_address)));
    Ok(functions)
}

/// An inlined function that also has an out-of-line body appears once per body (marked
/// `inlined`), not also as a body-less entry.
fn drop_roots_with_bodies(functions: &mut Vec<SourceFunction>) {
    let with_body: HashSet<(String, String)> = functions
        .iter()
        .filter(|f| f.entry_address.is_some())
        .map(|f| (f.name.clone(), f.decl_file.clone()))
        .collect();
    functions.retain(|f| {
        f.entry_address.is_some() || !with_body.contains(&(f.name.clone(), f.decl_file.clone()))
    });
}

/// `offset` followed by its origins, nearest first.
fn origin_chain(dies: &HashMap<UnitOffset, SubprogramDie>, offset: UnitOffset) -> Vec<UnitOffset> {
    let mut chain = vec![offset];
    let mut current = offset;
    while let Some(next) = dies.get(&current).and_then(|d| d.origin) {
        if chain.len() > MAX_ORIGIN_HOPS || !dies.contains_key(&next) {
            break;
        }
        chain.push(next);
        current = next;
    }
    chain
}

/// Parameters from the first DIE in the chain that lists them, each completed from its own
/// origin (concrete instances list parameters whose name and type live in the abstract root).
fn parameters(
    dies: &HashMap<UnitOffset, SubprogramDie>,
    chain: &[UnitOffset],
    types: &TypeNamer<'_, '_>,
) -> Vec<Parameter> {
    let Some(owner) = chain.iter().find(|o| !dies[o].parameters.is_empty()) else {
        return Vec::new();
    };
    let by_offset: HashMap<UnitOffset, &ParameterDie> = chain
        .iter()
        .flat_map(|o| dies[o].parameters.iter())
        .map(|p| (p.offset, p))
        .collect();
    // A parameter's own attributes first, then its abstract origin's.
    let resolved = |param: &ParameterDie| {
        let origin = param.origin.and_then(|o| by_offset.get(&o));
        let name = param
            .name
            .clone()
            .or_else(|| origin.and_then(|p| p.name.clone()));
        let type_ref = param.type_ref.or_else(|| origin.and_then(|p| p.type_ref));
        (name, type_ref)
    };
    dies[owner]
        .parameters
        .iter()
        .enumerate()
        .map(|(index, param)| {
            let (name, type_ref) = resolved(param);
            let name = name.unwrap_or_else(|| format!("arg{}", index + 1));
            let type_name = type_ref
                .map(|t| types.name(t))
                .unwrap_or_else(|| "void".to_string());
            Parameter { name, type_name }
        })
        .collect()
}

/// One depth-first walk over the unit, keeping subprograms and their direct parameters.
fn subprogram_dies(
    dwarf: &Dwarf<'_>,
    unit: &Unit<'_>,
) -> gimli::Result<HashMap<UnitOffset, SubprogramDie>> {
    let mut dies: HashMap<UnitOffset, SubprogramDie> = HashMap::new();
    // Offset of the subprogram at each depth of the current path, to attach parameters.
    let mut path: Vec<Option<UnitOffset>> = Vec::new();
    let mut cursor = unit.entries();
    while let Some(entry) = cursor.next_dfs()? {
        let depth = entry.depth().max(0) as usize;
        path.truncate(depth);
        match entry.tag() {
            gimli::DW_TAG_subprogram => {
                dies.insert(entry.offset(), read_subprogram(dwarf, unit, entry)?);
                path.push(Some(entry.offset()));
            }
            gimli::DW_TAG_formal_parameter => {
                let parent = depth
                    .checked_sub(1)
                    .and_then(|d| path.get(d).copied().flatten());
                if let Some(parent) = parent.and_then(|p| dies.get_mut(&p)) {
                    parent.parameters.push(read_parameter(dwarf, unit, entry)?);
                }
                path.push(None);
            }
            _ => path.push(None),
        }
    }
    Ok(dies)
}

fn read_subprogram<'a>(
    dwarf: &Dwarf<'a>,
    unit: &Unit<'a>,
    entry: &gimli::DebuggingInformationEntry<Reader<'a>>,
) -> gimli::Result<SubprogramDie> {
    let mut die = SubprogramDie::default();
    let mut entry_pc = None;
    let mut low_pc = None;
    let mut has_ranges = false;
    for attr in entry.attrs() {
        match attr.name() {
            gimli::DW_AT_name => {
                die.name = Some(
                    dwarf
                        .attr_string(unit, attr.value())?
                        .to_string_lossy()
                        .into(),
                )
            }
            gimli::DW_AT_decl_file => die.decl_file = attr.udata_value(),
            gimli::DW_AT_decl_line => die.decl_line = attr.udata_value().map(|l| l as u32),
            gimli::DW_AT_abstract_origin | gimli::DW_AT_specification => {
                die.origin = unit_ref(unit, attr.value())
            }
            gimli::DW_AT_inline => {
                die.declares_inlined = matches!(
                    attr.value(),
                    AttributeValue::Inline(gimli::DW_INL_inlined)
                        | AttributeValue::Inline(gimli::DW_INL_declared_inlined)
                )
            }
            gimli::DW_AT_declaration => die.is_declaration = true,
            gimli::DW_AT_low_pc => low_pc = dwarf.attr_address(unit, attr.value())?,
            gimli::DW_AT_entry_pc => entry_pc = dwarf.attr_address(unit, attr.value())?,
            gimli::DW_AT_ranges => has_ranges = true,
            _ => {}
        }
    }
    die.entry = entry_pc.or(low_pc);
    if die.entry.is_none() && has_ranges {
        // A hot/cold split body: the first range is the part that holds the entry.
        let mut ranges = dwarf.die_ranges(unit, entry)?;
        die.entry = ranges.next()?.map(|r| r.begin);
    }
    Ok(die)
}

fn read_parameter<'a>(
    dwarf: &Dwarf<'a>,
    unit: &Unit<'a>,
    entry: &gimli::DebuggingInformationEntry<Reader<'a>>,
) -> gimli::Result<ParameterDie> {
    let mut param = ParameterDie {
        offset: entry.offset(),
        name: None,
        type_ref: None,
        origin: None,
    };
    for attr in entry.attrs() {
        match attr.name() {
            gimli::DW_AT_name => {
                param.name = Some(
                    dwarf
                        .attr_string(unit, attr.value())?
                        .to_string_lossy()
                        .into(),
                )
            }
            gimli::DW_AT_type => param.type_ref = unit_ref(unit, attr.value()),
            gimli::DW_AT_abstract_origin => param.origin = unit_ref(unit, attr.value()),
            _ => {}
        }
    }
    Ok(param)
}

/// A reference to a DIE of the same unit (the only kind a non-LTO kernel uses here).
fn unit_ref(unit: &Unit<'_>, value: AttributeValue<Reader<'_>>) -> Option<UnitOffset> {
    match value {
        AttributeValue::UnitRef(offset) => Some(offset),
        AttributeValue::DebugInfoRef(offset) => offset.to_unit_offset(&unit.header),
        _ => None,
    }
}

/// C type names in the spelling `stap -L` uses: `struct socket*`, `char const*`.
struct TypeNamer<'d, 'u> {
    dwarf: &'d Dwarf<'d>,
    unit: &'u Unit<'d>,
}

impl TypeNamer<'_, '_> {
    fn name(&self, offset: UnitOffset) -> String {
        self.name_at_depth(offset, 0)
    }

    fn name_at_depth(&self, offset: UnitOffset, depth: usize) -> String {
        if depth > 16 {
            return "...".to_string();
        }
        let Ok(entry) = self.unit.entry(offset) else {
            return "?".to_string();
        };
        let own_name = entry
            .attr_value(gimli::DW_AT_name)
            .and_then(|v| self.dwarf.attr_string(self.unit, v).ok())
            .map(|s| s.to_string_lossy().into_owned());
        let inner = || match entry
            .attr_value(gimli::DW_AT_type)
            .and_then(|v| unit_ref(self.unit, v))
        {
            Some(t) => self.name_at_depth(t, depth + 1),
            None => "void".to_string(),
        };
        let tagged = |keyword: &str| match &own_name {
            Some(name) => format!("{keyword} {name}"),
            None => format!("{keyword} {{...}}"),
        };
        match entry.tag() {
            gimli::DW_TAG_pointer_type => format!("{}*", inner()),
            gimli::DW_TAG_const_type => format!("{} const", inner()),
            gimli::DW_TAG_volatile_type => format!("{} volatile", inner()),
            gimli::DW_TAG_restrict_type => format!("{} restrict", inner()),
            gimli::DW_TAG_array_type => format!("{}[]", inner()),
            gimli::DW_TAG_structure_type => tagged("struct"),
            gimli::DW_TAG_union_type => tagged("union"),
            gimli::DW_TAG_enumeration_type => tagged("enum"),
            gimli::DW_TAG_subroutine_type => format!("{} (...)", inner()),
            _ => own_name.unwrap_or_else(|| "?".to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_path_is_relative_to_comp_dir() {
        let comp = "debian/build/build_amd64_none_cloud-amd64";
        assert_eq!(display_path(comp, Some("net"), "socket.c"), "net/socket.c");
        assert_eq!(
            display_path(comp, Some(comp), "net/socket.c"),
            "net/socket.c"
        );
        assert_eq!(
            display_path("/src", Some("/usr/include"), "stdio.h"),
            "/usr/include/stdio.h"
        );
        assert_eq!(display_path("/src", Some("/x"), "/abs/a.h"), "/abs/a.h");
        assert_eq!(display_path("/src", None, "a.c"), "a.c");
        assert_eq!(display_path("/src", Some("/srcdir"), "a.c"), "/srcdir/a.c");
    }
}
