//! rstap's own tapset library, written in the script language and built into the binary,
//! and the user's tapset directories (`-I DIR`). A script gets a tapset file's aliases,
//! functions and globals by using one of its aliases or functions (see
//! `script::passes::aliases`); the files are only parsed otherwise.

mod prometheus;
pub mod syscalls;

use std::path::{Path, PathBuf};

use crate::script::{SourceFile, SourceMap};

/// The built-in tapsets, named as errors show them.
const LIBRARY: &[(&str, &str)] = &[
    (
        "<rstap>/tapset/syscall_any.stp",
        include_str!("syscall_any.stp"),
    ),
    ("<rstap>/tapset/syscalls.stp", include_str!("syscalls.stp")),
    ("<rstap>/tapset/task.stp", include_str!("task.stp")),
    (
        "<rstap>/tapset/scheduler.stp",
        include_str!("scheduler.stp"),
    ),
    ("<rstap>/tapset/kprocess.stp", include_str!("kprocess.stp")),
    (
        "<rstap>/tapset/target_set.stp",
        include_str!("target_set.stp"),
    ),
    (
        "<rstap>/tapset/stopwatch.stp",
        include_str!("stopwatch.stp"),
    ),
    ("<rstap>/tapset/dev.stp", include_str!("dev.stp")),
    ("<rstap>/tapset/errno.stp", include_str!("errno.stp")),
    ("<rstap>/tapset/clocks.stp", include_str!("clocks.stp")),
    ("<rstap>/tapset/logging.stp", include_str!("logging.stp")),
    ("<rstap>/tapset/integers.stp", include_str!("integers.stp")),
    ("<rstap>/tapset/macros.stpm", include_str!("macros.stpm")),
    ("<rstap>/tapset/this.stp", include_str!("this.stp")),
    ("<rstap>/tapset/argv.stp", include_str!("argv.stp")),
    ("<rstap>/tapset/oneshot.stp", include_str!("oneshot.stp")),
    ("<rstap>/tapset/vfs.stp", include_str!("vfs.stp")),
    ("<rstap>/tapset/signal.stp", include_str!("signal.stp")),
    ("<rstap>/tapset/netdev.stp", include_str!("netdev.stp")),
    ("<rstap>/tapset/ioblock.stp", include_str!("ioblock.stp")),
    ("<rstap>/tapset/inet.stp", include_str!("inet.stp")),
    ("<rstap>/tapset/tcp.stp", include_str!("tcp.stp")),
    ("<rstap>/tapset/tcpmib.stp", include_str!("tcpmib.stp")),
    ("<rstap>/tapset/udp.stp", include_str!("udp.stp")),
    ("<rstap>/tapset/memory.stp", include_str!("memory.stp")),
    ("<rstap>/tapset/irq.stp", include_str!("irq.stp")),
    (
        "<rstap>/tapset/prometheus.stp",
        include_str!("prometheus.stp"),
    ),
    (
        "<rstap>/tapset/queue_stats.stp",
        include_str!("queue_stats.stp"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum TapsetError {
    #[error("cannot read the tapset directory {} given with -I", .dir.display())]
    Directory {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the tapset {}", .path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Adds rstap's tapsets to the map.
pub fn add_built_in(source: &mut SourceMap) {
    for &(name, text) in LIBRARY {
        source.add_library(SourceFile::new(name, text));
    }
    source.add_library(SourceFile::new(
        "<rstap>/tapset/prometheus.stpm",
        prometheus::dump_macros(),
    ));
}

/// Adds rstap's tapsets to the map, then every `*.stp` file under each of `dirs` (sorted
/// by path, directories searched in their order).
pub fn add_library(source: &mut SourceMap, dirs: &[PathBuf]) -> Result<(), TapsetError> {
    add_built_in(source);
    for dir in dirs {
        let mut paths = Vec::new();
        find_tapsets(dir, &mut paths)?;
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|source| TapsetError::File {
                path: path.clone(),
                source,
            })?;
            source.add_library(SourceFile::new(path.display().to_string(), text));
        }
    }
    Ok(())
}

/// The `*.stp` files in `dir` and the directories below it.
fn find_tapsets(dir: &Path, into: &mut Vec<PathBuf>) -> Result<(), TapsetError> {
    let unreadable = |source| TapsetError::Directory {
        dir: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path();
        if path.is_dir() {
            find_tapsets(&path, into)?;
        } else if path
            .extension()
            .is_some_and(|ext| ext == "stp" || ext == "stpm")
        {
            into.push(path);
        }
    }
    Ok(())
}
