//! Copies of a loaded template program: its instructions loaded again as a new program,
//! for one more function (fentry) or tracepoint. Loading a copy skips re-opening the
//! object and re-parsing the kernel's BTF per target.

use std::ffi::{CStr, CString};
use std::os::fd::{FromRawFd, OwnedFd};

use libbpf_rs::libbpf_sys;
use libbpf_rs::{AsRawLibbpf, ProgramMut};

const LICENSE: &CStr = c"GPL";
/// Bytes of verifier log kept to explain why a copy was refused.
const VERIFIER_LOG_BYTES: usize = 64 * 1024;

/// What a copy is loaded for.
#[derive(Debug, Clone, Copy)]
pub(super) enum CopyTarget {
    /// A kernel function by BTF id, for fentry or fexit.
    Function {
        attach_type: libbpf_sys::bpf_attach_type,
        btf_id: u32,
    },
    /// Any raw tracepoint, named when it is attached.
    RawTracepoint,
    /// Any tracepoint's trace record, chosen when it is attached.
    TraceRecord,
    /// Any sampled perf event, chosen when it is attached.
    Sample,
}

/// Loads a copy of `template`'s instructions, or of `insns` (the template's, changed), for
/// `target`. The copy carries the template's function and line info, against the object's
/// BTF (`object_btf`): the kernel wants them of a program with subprograms (the fetch step
/// bpf_loop calls).
pub(super) fn load(
    template: &ProgramMut<'_>,
    object_btf: i32,
    target: CopyTarget,
    insns: Option<&[libbpf_sys::bpf_insn]>,
) -> Result<OwnedFd, String> {
    let insns = insns.unwrap_or_else(|| template.insns());
    let program = template.as_libbpf_object().as_ptr();
    // SAFETY: the program belongs to a loaded object that outlives this call; libbpf keeps
    // its function and line info for as long as the object.
    let (func_info, func_info_cnt, line_info, line_info_cnt) = unsafe {
        (
            libbpf_sys::bpf_program__func_info(program),
            libbpf_sys::bpf_program__func_info_cnt(program),
            libbpf_sys::bpf_program__line_info(program),
            libbpf_sys::bpf_program__line_info_cnt(program),
        )
    };
    let name = CString::new(template.name().as_encoded_bytes())
        .map_err(|_| "template program name contains NUL".to_string())?;
    let (program_type, attach_type, btf_id) = match target {
        CopyTarget::Function {
            attach_type,
            btf_id,
        } => (libbpf_sys::BPF_PROG_TYPE_TRACING, attach_type, btf_id),
        CopyTarget::RawTracepoint => (libbpf_sys::BPF_PROG_TYPE_RAW_TRACEPOINT, 0, 0),
        CopyTarget::TraceRecord => (libbpf_sys::BPF_PROG_TYPE_TRACEPOINT, 0, 0),
        CopyTarget::Sample => (libbpf_sys::BPF_PROG_TYPE_PERF_EVENT, 0, 0),
    };
    let load = |log: Option<&mut [u8]>| {
        let mut opts = libbpf_sys::bpf_prog_load_opts {
            sz: std::mem::size_of::<libbpf_sys::bpf_prog_load_opts>() as _,
            expected_attach_type: attach_type,
            attach_btf_id: btf_id,
            ..Default::default()
        };
        if object_btf >= 0 && !func_info.is_null() {
            opts.prog_btf_fd = object_btf as u32;
            opts.func_info = func_info.cast();
            opts.func_info_cnt = func_info_cnt;
            opts.func_info_rec_size = std::mem::size_of::<libbpf_sys::bpf_func_info>() as u32;
            if !line_info.is_null() {
                opts.line_info = line_info.cast();
                opts.line_info_cnt = line_info_cnt;
                opts.line_info_rec_size = std::mem::size_of::<libbpf_sys::bpf_line_info>() as u32;
            }
        }
        if let Some(log) = log {
            opts.log_level = 1;
            opts.log_size = log.len() as u32;
            opts.log_buf = log.as_mut_ptr().cast();
        }
        // SAFETY: insns is a live slice of instructions, name and licence are
        // NUL-terminated, and opts (with any log buffer) outlives the call.
        let fd = unsafe {
            libbpf_sys::bpf_prog_load(
                program_type,
                name.as_ptr(),
                LICENSE.as_ptr(),
                insns.as_ptr(),
                insns.len() as _,
                &mut opts,
            )
        };
        owned_fd(fd)
    };
    load(None).map_err(|err| {
        // Load again with the verifier's log only now: logging every load is slow.
        let mut log = vec![0u8; VERIFIER_LOG_BYTES];
        let _ = load(Some(&mut log));
        match last_log_line(&log) {
            Some(line) => format!("kernel refused the program: {line}"),
            None => format!("kernel refused the program: {err}"),
        }
    })
}

/// The fd a libbpf call returned, or its error.
pub(super) fn owned_fd(ret: i32) -> std::io::Result<OwnedFd> {
    if ret < 0 {
        Err(std::io::Error::from_raw_os_error(-ret))
    } else {
        // SAFETY: a non-negative return of a libbpf fd-creating call is a new fd we own.
        Ok(unsafe { OwnedFd::from_raw_fd(ret) })
    }
}

fn last_log_line(log: &[u8]) -> Option<String> {
    let len = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    String::from_utf8_lossy(&log[..len])
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty() && !line.starts_with("processed "))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_log_line_skips_the_statistics_line() {
        let log = b"func#0 @0\nThe function sock_i_uid return type UNKNOWN is unsupported.\nprocessed 0 insns\n\0\0";
        assert_eq!(
            last_log_line(log).as_deref(),
            Some("The function sock_i_uid return type UNKNOWN is unsupported.")
        );
        assert_eq!(last_log_line(b"\0"), None);
    }
}
