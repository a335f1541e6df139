//! The function index of one kernel build, filled lazily and kept on disk by build-id.
//!
//! The first use reads every compile unit's file table (cheap: headers only). A query parses
//! only the units whose file table holds a file the pattern can match, and stores their
//! functions, so the index grows with use and any later pattern reuses what earlier ones
//! parsed. The cache file is replaced atomically; one that cannot be read is rebuilt.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::build_id::BuildId;
use super::dwarf::{self, DwarfError, SourceFunction};
use super::glob::{Glob, GlobError};
use super::vmlinux::{Vmlinux, VmlinuxError};

/// Bumped whenever the layout or the meaning of cached data changes.
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Error)]
pub enum IndexError {
    #[error(transparent)]
    Dwarf(#[from] DwarfError),
    #[error(transparent)]
    Vmlinux(#[from] VmlinuxError),
    #[error("cannot write the debug info cache {path}: {source}")]
    CacheWrite {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    CacheDir(#[from] CacheDirError),
}

/// Why rstap, which runs as root, will not use a cache directory: what it reads from there
/// decides which kernel functions it attaches to, so nobody else may be able to write there.
#[derive(Debug, Error)]
pub enum CacheDirError {
    #[error("cannot create the cache directory {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the cache path {path} is not a directory")]
    NotDirectory { path: PathBuf },
    #[error(
        "refusing the cache directory {path}: it belongs to uid {owner}, and rstap runs as \
         uid {user}; remove it, or set XDG_CACHE_HOME to a directory of your own"
    )]
    ForeignOwner {
        path: PathBuf,
        owner: u32,
        user: u32,
    },
    #[error(
        "refusing the cache directory {path}: other users can write to it (mode {mode:03o}); \
         run chmod go-w on it"
    )]
    WritableByOthers { path: PathBuf, mode: u32 },
}

/// `NAME@FILE` of a `kernel.function` probe point, as globs.
#[derive(Debug, Clone)]
pub struct SourcePattern {
    function: Glob,
    file: Glob,
    file_in_any_dir: Glob,
}

impl SourcePattern {
    pub fn new(function: &str, file: &str) -> Result<SourcePattern, GlobError> {
        Ok(SourcePattern {
            function: Glob::new(function)?,
            file: Glob::new(file)?,
            file_in_any_dir: Glob::new(&format!("*/{file}"))?,
        })
    }

    /// SystemTap matches the file part as written and with an implicit `*/` in front.
    pub fn matches_file(&self, path: &str) -> bool {
        self.file.matches(path) || self.file_in_any_dir.matches(path)
    }

    pub fn matches(&self, function: &SourceFunction) -> bool {
        self.function.matches(&function.name) && self.matches_file(&function.decl_file)
    }
}

#[derive(Serialize, Deserialize)]
struct IndexData {
    format: u32,
    build_id: BuildId,
    /// Every distinct source path of the kernel, referred to by position.
    paths: Vec<String>,
    units: Vec<UnitEntry>,
}

#[derive(Serialize, Deserialize)]
struct UnitEntry {
    offset: usize,
    /// Positions in `paths` of the files this unit's DIEs can declare things in.
    files: Vec<u32>,
    /// Filled the first time a query needs this unit.
    functions: Option<Vec<SourceFunction>>,
}

/// The function index of one vmlinux.
pub struct FunctionIndex {
    data: IndexData,
    cache_file: Option<PathBuf>,
}

impl FunctionIndex {
    /// Loads the index for `vmlinux` from `cache_dir`, or starts one from its file tables.
    /// Without a cache directory the index lives only in memory.
    pub fn open(vmlinux: &Vmlinux, cache_dir: Option<&Path>) -> Result<FunctionIndex, IndexError> {
        if let Some(dir) = cache_dir {
            prepare_cache_dir(dir)?;
        }
        let build_id = vmlinux.build_id();
        let cache_file = cache_dir.map(|dir| dir.join("index").join(format!("{build_id}.idx")));
        if let Some(data) = cache_file.as_deref().and_then(|f| read_cache(f, build_id)) {
            return Ok(FunctionIndex { data, cache_file });
        }
        let index = FunctionIndex {
            data: build_skeleton(vmlinux)?,
            cache_file,
        };
        index.save()?;
        Ok(index)
    }

    /// The functions matching `pattern`, sorted by name then address, one per entry address
    /// (inline-only functions: one per declaration). Parses and caches the units it needs.
    pub fn resolve(
        &mut self,
        vmlinux: &Vmlinux,
        pattern: &SourcePattern,
    ) -> Result<Vec<SourceFunction>, IndexError> {
        let wanted_paths: HashSet<u32> = (0..)
            .zip(&self.data.paths)
            .filter(|(_, path)| pattern.matches_file(path))
            .map(|(id, _)| id)
            .collect();
        let wanted_units: Vec<usize> = (0..self.data.units.len())
            .filter(|&i| {
                self.data.units[i]
                    .files
                    .iter()
                    .any(|f| wanted_paths.contains(f))
            })
            .collect();

        let missing: Vec<usize> = wanted_units
            .iter()
            .copied()
            .filter(|&i| self.data.units[i].functions.is_none())
            .collect();
        if !missing.is_empty() {
            self.parse_units(vmlinux, &missing)?;
            self.save()?;
        }

        let mut seen_entries = HashSet::new();
        let mut seen_inline_only = HashSet::new();
        let mut matched: Vec<SourceFunction> = wanted_units
            .iter()
            .flat_map(|&i| self.data.units[i].functions.iter().flatten())
            .filter(|f| pattern.matches(f))
            .filter(|f| match f.entry_address {
                Some(address) => seen_entries.insert(address),
                None => seen_inline_only.insert((f.name.clone(), f.decl_file.clone(), f.decl_line)),
            })
            .cloned()
            .collect();
        matched.sort_by(|a, b| (&a.name, a.entry_address).cmp(&(&b.name, b.entry_address)));
        Ok(matched)
    }

    fn parse_units(&mut self, vmlinux: &Vmlinux, units: &[usize]) -> Result<(), IndexError> {
        let mut parsed = Vec::with_capacity(units.len());
        for &i in units {
            parsed.push(dwarf::unit_functions(vmlinux, self.data.units[i].offset)?);
        }
        let entries: HashSet<u64> = parsed
            .iter()
            .flatten()
            .filter_map(|f| f.entry_address)
            .collect();
        let symbols = vmlinux.symbols_at(&entries)?;
        for (&i, mut functions) in units.iter().zip(parsed) {
            functions.retain(|f| !is_unprobeable_body(f, &symbols));
            self.data.units[i].functions = Some(functions);
        }
        Ok(())
    }

    fn save(&self) -> Result<(), IndexError> {
        let Some(path) = &self.cache_file else {
            return Ok(());
        };
        let bytes = postcard::to_stdvec(&self.data).map_err(|e| IndexError::CacheWrite {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        write_atomically(path, &bytes).map_err(|source| IndexError::CacheWrite {
            path: path.clone(),
            source,
        })
    }
}

/// Bodies SystemTap does not probe: partial-inlining fragments (`foo.part.0`), which start
/// mid-function, and the `__pfx_` padding in front of functions.
fn is_unprobeable_body(function: &SourceFunction, symbols: &HashMap<u64, Vec<String>>) -> bool {
    let Some(address) = function.entry_address else {
        return false;
    };
    symbols.get(&address).is_some_and(|names| {
        names
            .iter()
            .any(|n| n.contains(".part.") || n.starts_with("__pfx_"))
    })
}

fn build_skeleton(vmlinux: &Vmlinux) -> Result<IndexData, IndexError> {
    let mut paths = Vec::new();
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut units = Vec::new();
    for unit in dwarf::unit_files(vmlinux)? {
        let files = unit
            .files
            .into_iter()
            .map(|path| {
                *ids.entry(path).or_insert_with_key(|path| {
                    paths.push(path.clone());
                    (paths.len() - 1) as u32
                })
            })
            .collect();
        units.push(UnitEntry {
            offset: unit.unit_offset,
            files,
            functions: None,
        });
    }
    Ok(IndexData {
        format: FORMAT_VERSION,
        build_id: vmlinux.build_id().clone(),
        paths,
        units,
    })
}

/// A cache that is missing, unreadable, of another format or another build is a miss.
fn read_cache(path: &Path, build_id: &BuildId) -> Option<IndexData> {
    let bytes = fs::read(path).ok()?;
    let data: IndexData = postcard::from_bytes(&bytes).ok()?;
    (data.format == FORMAT_VERSION && &data.build_id == build_id).then_some(data)
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so
/// a reader sees either the old file or the new one. Directories are private to the user.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("cache path has no parent directory"))?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if result.is_err() {
        // Best effort: the temporary file is garbage either way.
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Creates the cache directory, private to this user, if it is missing, and refuses one that
/// another user owns or may write to. Everything below it is created by rstap, private.
pub fn prepare_cache_dir(dir: &Path) -> Result<(), CacheDirError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| CacheDirError::Create {
            path: dir.to_path_buf(),
            source,
        })?;
    let meta = fs::metadata(dir).map_err(|source| CacheDirError::Create {
        path: dir.to_path_buf(),
        source,
    })?;
    // SAFETY: geteuid has no failure mode.
    let user = unsafe { libc::geteuid() };
    check_cache_dir_metadata(dir, &meta, user)
}

fn check_cache_dir_metadata(
    dir: &Path,
    meta: &fs::Metadata,
    user: u32,
) -> Result<(), CacheDirError> {
    let path = dir.to_path_buf();
    if !meta.is_dir() {
        return Err(CacheDirError::NotDirectory { path });
    }
    if meta.uid() != user {
        return Err(CacheDirError::ForeignOwner {
            path,
            owner: meta.uid(),
            user,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(CacheDirError::WritableByOthers { path, mode });
    }
    Ok(())
}

/// `$XDG_CACHE_HOME/rstap`, else `~/.cache/rstap`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base =
        xdg.or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))?;
    Some(base.join("rstap"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn function(name: &str, file: &str) -> SourceFunction {
        SourceFunction {
            name: name.to_string(),
            decl_file: file.to_string(),
            decl_line: 1,
            entry_address: Some(0x1000),
            inlined: false,
            parameters: Vec::new(),
        }
    }

    #[test]
    fn file_glob_matches_as_written_and_under_any_directory() {
        let p = SourcePattern::new("*", "socket.c").unwrap();
        assert!(p.matches_file("socket.c"));
        assert!(p.matches_file("net/socket.c"));
        assert!(!p.matches_file("net/xsocket.c"));
        let p = SourcePattern::new("*", "net/socket.c").unwrap();
        assert!(p.matches_file("net/socket.c"));
        assert!(!p.matches_file("net/core/socket.c"));
        let p = SourcePattern::new("*", "net/*.c").unwrap();
        assert!(p.matches_file("net/core/sock.c"));
        assert!(!p.matches_file("include/net/sock.h"));
    }

    #[test]
    fn pattern_matches_name_and_declaring_file() {
        let p = SourcePattern::new("sock_*", "net/socket.c").unwrap();
        assert!(p.matches(&function("sock_poll", "net/socket.c")));
        assert!(!p.matches(&function("__sys_connect", "net/socket.c")));
        assert!(!p.matches(&function("sock_net", "include/net/sock.h")));
    }

    #[test]
    fn partial_and_padding_bodies_are_unprobeable() {
        let symbols = HashMap::from([(0x1000, vec!["foo.part.0".to_string()])]);
        assert!(is_unprobeable_body(&function("foo", "a.c"), &symbols));
        let symbols = HashMap::from([(0x1000, vec!["__pfx_foo".to_string()])]);
        assert!(is_unprobeable_body(&function("foo", "a.c"), &symbols));
        let symbols = HashMap::from([(0x1000, vec!["foo.constprop.0".to_string()])]);
        assert!(!is_unprobeable_body(&function("foo", "a.c"), &symbols));
        let mut inline_only = function("foo", "a.c");
        inline_only.entry_address = None;
        assert!(!is_unprobeable_body(&inline_only, &HashMap::new()));
    }

    #[test]
    fn atomic_write_replaces_and_keeps_dir_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/x.idx");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let mode = fs::metadata(dir.path().join("sub"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
        let leftovers = fs::read_dir(dir.path().join("sub")).unwrap().count();
        assert_eq!(leftovers, 1);
    }

    #[test]
    fn missing_cache_dir_is_created_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("a/rstap");
        prepare_cache_dir(&cache).unwrap();
        let mode = fs::metadata(&cache).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
        // A second run finds it as it left it.
        prepare_cache_dir(&cache).unwrap();
    }

    #[test]
    fn cache_dir_others_can_write_to_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let err = prepare_cache_dir(dir.path()).unwrap_err();
        assert!(
            matches!(err, CacheDirError::WritableByOthers { mode: 0o777, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chmod go-w"), "{err}");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        prepare_cache_dir(dir.path()).unwrap();
    }

    #[test]
    fn cache_dir_of_another_user_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let meta = fs::metadata(dir.path()).unwrap();
        let other = meta.uid() + 1;
        let err = check_cache_dir_metadata(dir.path(), &meta, other).unwrap_err();
        assert!(
            matches!(err, CacheDirError::ForeignOwner { owner, user, .. } if owner == meta.uid() && user == other),
            "{err}"
        );
        assert!(check_cache_dir_metadata(dir.path(), &meta, meta.uid()).is_ok());
    }

    #[test]
    fn cache_path_that_is_a_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rstap");
        fs::write(&file, b"").unwrap();
        assert!(prepare_cache_dir(&file).is_err());
    }

    #[test]
    fn corrupt_cache_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.idx");
        fs::write(&path, b"\xff\xff\xff garbage").unwrap();
        assert!(read_cache(&path, &BuildId::new(vec![1, 2])).is_none());
        assert!(read_cache(&dir.path().join("absent"), &BuildId::new(vec![1])).is_none());
    }
}
