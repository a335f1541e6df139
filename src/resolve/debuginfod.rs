//! Fetching a kernel's debug info by build-id from debuginfod servers
//! (`GET <url>/buildid/<hex>/debuginfo`), verified and cached.

use std::io::Read;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use thiserror::Error;

use super::build_id::BuildId;
use super::index_cache::{prepare_cache_dir, write_atomically, CacheDirError};
use super::vmlinux::{Vmlinux, VmlinuxError};

#[derive(Debug, Error)]
pub enum DebuginfodError {
    #[error("debuginfod server {url} is unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("debuginfod server answered HTTP {status} for {url}")]
    Http { url: String, status: u16 },
    #[error("download from {url} failed: {reason}")]
    Download { url: String, reason: String },
    #[error("debuginfod server {url} served a file for the wrong kernel: build-id {found}, expected {expected}")]
    WrongBuildId {
        url: String,
        expected: BuildId,
        found: BuildId,
    },
    #[error("debuginfod server {url} served an unusable file: {source}")]
    Unusable { url: String, source: VmlinuxError },
    #[error(transparent)]
    CacheDir(#[from] CacheDirError),
    #[error("cannot store the downloaded debug info in {path}: {source}")]
    Store {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The server list from a `DEBUGINFOD_URLS` value: space-separated, trailing `/` dropped.
pub fn parse_urls(value: &str) -> Vec<String> {
    value
        .split_whitespace()
        .map(|url| url.trim_end_matches('/').to_string())
        .filter(|url| !url.is_empty())
        .collect()
}

/// Where a build-id's downloaded debug info is kept.
pub fn cached_path(cache_dir: &Path, build_id: &BuildId) -> PathBuf {
    cache_dir
        .join("debuginfod")
        .join(build_id.to_hex())
        .join("debuginfo")
}

/// Returns the cached debug info for `build_id`, or downloads it from the first server that
/// has it. A server answering 404 is skipped; the last error is returned if none has it.
pub fn fetch(
    urls: &[String],
    build_id: &BuildId,
    cache_dir: &Path,
    show_progress: bool,
) -> Result<Vmlinux, Vec<DebuginfodError>> {
    prepare_cache_dir(cache_dir).map_err(|error| vec![error.into()])?;
    let target = cached_path(cache_dir, build_id);
    if let Ok(vmlinux) = Vmlinux::open(&target) {
        if vmlinux.build_id() == build_id {
            return Ok(vmlinux);
        }
    }
    let mut errors = Vec::new();
    for base in urls {
        let url = format!("{base}/buildid/{}/debuginfo", build_id.to_hex());
        match download(&url, show_progress)
            .and_then(|bytes| store_verified(&url, &bytes, build_id, &target))
        {
            Ok(vmlinux) => return Ok(vmlinux),
            Err(error) => errors.push(error),
        }
    }
    Err(errors)
}

fn download(url: &str, show_progress: bool) -> Result<Vec<u8>, DebuginfodError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let response = agent
        .get(url)
        .call()
        .map_err(|e| DebuginfodError::Unreachable {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(DebuginfodError::Http {
            url: url.to_string(),
            status,
        });
    }
    let length = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let progress = if show_progress {
        let bar = ProgressBar::new(length.unwrap_or(0));
        if let Ok(style) = ProgressStyle::with_template(
            "downloading kernel debug info {bytes}/{total_bytes} {wide_bar} {eta}",
        ) {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut body = Vec::with_capacity(length.unwrap_or(0) as usize);
    let mut reader = progress.wrap_read(
        response
            .into_body()
            .into_with_config()
            .limit(u64::MAX)
            .reader(),
    );
    reader
        .read_to_end(&mut body)
        .map_err(|e| DebuginfodError::Download {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
    progress.finish_and_clear();
    Ok(body)
}

/// Checks the download before it enters the cache, so a bad file is never found there later.
fn store_verified(
    url: &str,
    bytes: &[u8],
    expected: &BuildId,
    target: &Path,
) -> Result<Vmlinux, DebuginfodError> {
    let store_error = |source| DebuginfodError::Store {
        path: target.to_path_buf(),
        source,
    };
    let staging = target.with_extension("download");
    write_atomically(&staging, bytes).map_err(store_error)?;
    let checked = Vmlinux::open(&staging).map_err(|source| DebuginfodError::Unusable {
        url: url.to_string(),
        source,
    });
    let outcome = match checked {
        Ok(vmlinux) if vmlinux.build_id() == expected => Ok(()),
        Ok(vmlinux) => Err(DebuginfodError::WrongBuildId {
            url: url.to_string(),
            expected: expected.clone(),
            found: vmlinux.build_id().clone(),
        }),
        Err(error) => Err(error),
    };
    if let Err(error) = outcome {
        // Best effort: the rejected download must not linger.
        let _ = std::fs::remove_file(&staging);
        return Err(error);
    }
    std::fs::rename(&staging, target).map_err(store_error)?;
    Vmlinux::open(target).map_err(|source| DebuginfodError::Unusable {
        url: url.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_space_separated_without_trailing_slash() {
        assert_eq!(
            parse_urls(" https://a.example/  http://127.0.0.1:8002 "),
            vec!["https://a.example", "http://127.0.0.1:8002"]
        );
        assert!(parse_urls("   ").is_empty());
    }

    #[test]
    fn cache_dir_others_can_write_to_is_refused_before_any_download() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        // The server address is never contacted: nothing listens there.
        let Err(errors) = fetch(
            &["http://127.0.0.1:9".to_string()],
            &BuildId::new(vec![0xab]),
            dir.path(),
            false,
        ) else {
            panic!("a world-writable cache was used");
        };
        assert!(
            matches!(
                errors.as_slice(),
                [DebuginfodError::CacheDir(
                    CacheDirError::WritableByOthers { .. }
                )]
            ),
            "{errors:?}"
        );
    }

    #[test]
    fn cache_path_is_per_build_id() {
        let id = BuildId::new(vec![0xab, 0x01]);
        assert_eq!(
            cached_path(Path::new("/c"), &id),
            Path::new("/c/debuginfod/ab01/debuginfo")
        );
    }
}
