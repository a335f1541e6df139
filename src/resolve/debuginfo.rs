//! Finding the running kernel's DWARF, in SystemTap's order: an explicit path, the usual
//! vmlinux locations for the release, then debuginfod. Whatever is found must carry the
//! running kernel's build-id.

use std::path::{Path, PathBuf};

use thiserror::Error;

use super::build_id::BuildId;
use super::debuginfod::{self, DebuginfodError};
use super::vmlinux::{Vmlinux, VmlinuxError};

#[derive(Debug, Error)]
pub enum DebugInfoError {
    #[error(
        "missing kernel debuginfo for {release}: looked in {searched}; install \
         linux-image-{release}-dbg (Debian, Ubuntu) or kernel-debuginfo (Fedora, RHEL), \
         or set DEBUGINFOD_URLS"
    )]
    NotFound { release: String, searched: String },
    #[error(
        "{path} is for another kernel: its build-id is {found}, the running kernel's is {expected}"
    )]
    WrongBuildId {
        path: PathBuf,
        expected: BuildId,
        found: BuildId,
    },
    #[error(transparent)]
    Unusable(#[from] VmlinuxError),
    #[error("{}", join_errors(.0))]
    Debuginfod(Vec<DebuginfodError>),
}

fn join_errors(errors: &[DebuginfodError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// What to look for and where.
#[derive(Debug, Clone)]
pub struct DebugInfoQuery {
    /// `uname -r` of the kernel, for the error message and the default locations.
    pub release: String,
    pub expected_build_id: BuildId,
    /// A path the user gave: used alone, and any problem with it is an error.
    pub explicit_path: Option<PathBuf>,
    /// Candidate files in order; [`default_search_paths`] for a normal run.
    pub search_paths: Vec<PathBuf>,
    /// debuginfod servers; [`debuginfod::parse_urls`] of `DEBUGINFOD_URLS`.
    pub debuginfod_urls: Vec<String>,
    /// Where downloads are cached; without it debuginfod is not used.
    pub cache_dir: Option<PathBuf>,
    /// Show a progress bar while downloading (on a terminal).
    pub show_progress: bool,
}

/// The locations SystemTap searches for a release's vmlinux.
pub fn default_search_paths(release: &str) -> Vec<PathBuf> {
    vec![
        PathBuf::from(format!("/usr/lib/debug/boot/vmlinux-{release}")),
        PathBuf::from(format!("/usr/lib/debug/lib/modules/{release}/vmlinux")),
        PathBuf::from(format!("/boot/vmlinux-{release}")),
        PathBuf::from(format!("/lib/modules/{release}/build/vmlinux")),
    ]
}

/// Opens the first vmlinux that matches the query. A candidate on disk with another build-id
/// does not stop the search, but is reported if nothing better turns up.
pub fn locate(query: &DebugInfoQuery) -> Result<Vmlinux, DebugInfoError> {
    if let Some(path) = &query.explicit_path {
        return open_checked(path, &query.expected_build_id);
    }
    let mut first_problem = None;
    for path in query.search_paths.iter().filter(|p| p.exists()) {
        match open_checked(path, &query.expected_build_id) {
            Ok(vmlinux) => return Ok(vmlinux),
            Err(problem) => {
                first_problem.get_or_insert(problem);
            }
        }
    }
    if let (Some(cache_dir), false) = (&query.cache_dir, query.debuginfod_urls.is_empty()) {
        match debuginfod::fetch(
            &query.debuginfod_urls,
            &query.expected_build_id,
            cache_dir,
            query.show_progress,
        ) {
            Ok(vmlinux) => return Ok(vmlinux),
            Err(errors) => {
                return Err(first_problem.unwrap_or(DebugInfoError::Debuginfod(errors)));
            }
        }
    }
    Err(first_problem.unwrap_or_else(|| DebugInfoError::NotFound {
        release: query.release.clone(),
        searched: describe(&query.search_paths),
    }))
}

fn open_checked(path: &Path, expected: &BuildId) -> Result<Vmlinux, DebugInfoError> {
    let vmlinux = Vmlinux::open(path)?;
    if vmlinux.build_id() != expected {
        return Err(DebugInfoError::WrongBuildId {
            path: path.to_path_buf(),
            expected: expected.clone(),
            found: vmlinux.build_id().clone(),
        });
    }
    Ok(vmlinux)
}

fn describe(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "no locations".to_string();
    }
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_paths_follow_systemtap_order() {
        let paths = default_search_paths("6.1.0-56-cloud-amd64");
        assert_eq!(
            paths[0],
            Path::new("/usr/lib/debug/boot/vmlinux-6.1.0-56-cloud-amd64")
        );
        assert_eq!(
            paths[3],
            Path::new("/lib/modules/6.1.0-56-cloud-amd64/build/vmlinux")
        );
        assert_eq!(paths.len(), 4);
    }

    #[test]
    fn nothing_found_names_packages_and_debuginfod() {
        let query = DebugInfoQuery {
            release: "6.1.0-9-amd64".to_string(),
            expected_build_id: BuildId::new(vec![1]),
            explicit_path: None,
            search_paths: vec![PathBuf::from("/nonexistent/vmlinux")],
            debuginfod_urls: Vec::new(),
            cache_dir: None,
            show_progress: false,
        };
        let message = locate(&query).err().unwrap().to_string();
        assert!(
            message.contains("linux-image-6.1.0-9-amd64-dbg"),
            "{message}"
        );
        assert!(message.contains("kernel-debuginfo"), "{message}");
        assert!(message.contains("DEBUGINFOD_URLS"), "{message}");
        assert!(message.contains("/nonexistent/vmlinux"), "{message}");
    }
}
