//! Tracepoint probes: one copy of a template program per tracepoint, the tracepoint's
//! number written into the copy's instructions, so that its events name their tracepoint
//! on every kernel (see tracepoint.bpf.c). Raw tracepoints are attached by name; a
//! tracepoint known only by its trace record through a perf event of its id.

use std::ffi::CString;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd};

use libbpf_rs::libbpf_sys;
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{AsRawLibbpf, OpenObject, ProgramMut};

use super::copies::{self, CopyTarget};
use super::{Placed, ProbeConfig, SharedMaps};

mod skeleton {
    include!(concat!(env!("OUT_DIR"), "/tracepoint.skel.rs"));
}
use skeleton::{TracepointSkel, TracepointSkelBuilder};

/// `TRACEPOINT_NUMBER_PLACEHOLDER` in tracepoint.bpf.c.
const NUMBER_PLACEHOLDER: u64 = 0x7273_7461_7054_5021;
/// `BPF_LD | BPF_IMM | BPF_DW`: the first half of a 64-bit immediate load.
const LOAD_IMM64: u8 = 0x18;

/// A tracepoint to attach; its number is its index among those given to [`place`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracepointTarget {
    /// `sched:sched_switch`, for messages.
    pub display: String,
    /// The raw tracepoint's name (`sched_switch`), or the trace event id for one known
    /// only by its record.
    pub attach: TracepointAttach,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TracepointAttach {
    Raw(String),
    Record(u64),
}

/// The attached copies. Dropping them detaches.
pub(super) struct TracepointProbes<'obj> {
    /// The templates' object, whose BTF the copies' function info refers to.
    _skel: TracepointSkel<'obj>,
    /// Each copy's program and what holds it on its tracepoint (a raw tracepoint's fd, or
    /// a perf event and its link).
    attachments: Vec<(OwnedFd, Vec<OwnedFd>)>,
}

impl Placed for TracepointProbes<'_> {
    fn kernel_misses(&self) -> u64 {
        self.attachments
            .iter()
            .map(|(program, _)| super::kernel_misses(program))
            .sum()
    }
}

/// Loads the templates and attaches a copy to every target, in order; the first that
/// cannot be attached is the error, and nothing stays attached.
pub(super) fn place<'obj>(
    storage: &'obj mut MaybeUninit<OpenObject>,
    config: &ProbeConfig,
    shared: &SharedMaps,
    targets: &[TracepointTarget],
) -> Result<TracepointProbes<'obj>, String> {
    let open = open_configured!(
        TracepointSkelBuilder,
        storage,
        config,
        shared,
        "tracepoint programs"
    );
    let skel = open
        .load()
        .map_err(|err| format!("the kernel refuses tracepoint programs ({err})"))?;
    // SAFETY: the object is loaded and lives as long as the skeleton.
    let object_btf =
        unsafe { libbpf_sys::bpf_object__btf_fd(skel.object().as_libbpf_object().as_ptr()) };
    let mut attachments = Vec::with_capacity(targets.len());
    for (number, target) in targets.iter().enumerate() {
        let attached = match &target.attach {
            TracepointAttach::Raw(name) => {
                let template = &skel.progs.on_raw_tracepoint;
                let program = copy(template, object_btf, CopyTarget::RawTracepoint, number)?;
                let name = CString::new(name.as_str())
                    .map_err(|_| format!("{}: the name has a NUL byte", target.display))?;
                // SAFETY: name is NUL-terminated; the program fd is open.
                let link = unsafe {
                    libbpf_sys::bpf_raw_tracepoint_open(name.as_ptr(), program.as_raw_fd())
                };
                let link = copies::owned_fd(link)
                    .map_err(|err| format!("cannot attach to {}: {err}", target.display))?;
                (program, vec![link])
            }
            TracepointAttach::Record(id) => {
                let template = &skel.progs.on_trace_record;
                let program = copy(template, object_btf, CopyTarget::TraceRecord, number)?;
                let event = open_trace_event(*id).map_err(|err| {
                    format!("cannot open {} as a perf event: {err}", target.display)
                })?;
                // SAFETY: both fds are open; null opts ask for defaults.
                let link = unsafe {
                    libbpf_sys::bpf_link_create(
                        program.as_raw_fd(),
                        event.as_raw_fd(),
                        libbpf_sys::BPF_PERF_EVENT,
                        std::ptr::null(),
                    )
                };
                let link = copies::owned_fd(link)
                    .map_err(|err| format!("cannot attach to {}: {err}", target.display))?;
                (program, vec![event, link])
            }
        };
        attachments.push(attached);
    }
    Ok(TracepointProbes {
        _skel: skel,
        attachments,
    })
}

/// A copy of `template` whose events carry `number`.
fn copy(
    template: &ProgramMut<'_>,
    object_btf: i32,
    target: CopyTarget,
    number: usize,
) -> Result<OwnedFd, String> {
    let mut insns = template.insns().to_vec();
    numbered(&mut insns, number as u64)?;
    copies::load(template, object_btf, target, Some(&insns))
}

/// Writes `number` over the one 64-bit immediate that holds the placeholder.
fn numbered(insns: &mut [libbpf_sys::bpf_insn], number: u64) -> Result<(), String> {
    let halves = |value: u64| (value as u32 as i32, (value >> 32) as u32 as i32);
    let (low, high) = halves(NUMBER_PLACEHOLDER);
    let found: Vec<usize> = (0..insns.len().saturating_sub(1))
        .filter(|&at| {
            insns[at].code == LOAD_IMM64 && insns[at].imm == low && insns[at + 1].imm == high
        })
        .collect();
    let [at] = found[..] else {
        return Err(format!(
            "the tracepoint program has {} placeholders for its tracepoint's number, not one",
            found.len()
        ));
    };
    (insns[at].imm, insns[at + 1].imm) = halves(number);
    Ok(())
}

/// A perf event of the trace event `id`, which runs its BPF program on every CPU.
fn open_trace_event(id: u64) -> std::io::Result<OwnedFd> {
    let mut attr = libbpf_sys::perf_event_attr {
        type_: libbpf_sys::PERF_TYPE_TRACEPOINT,
        size: std::mem::size_of::<libbpf_sys::perf_event_attr>() as u32,
        config: id,
        ..Default::default()
    };
    attr.__bindgen_anon_1.sample_period = 1;
    attr.__bindgen_anon_2.wakeup_events = 1;
    // SAFETY: attr is a valid perf_event_attr; pid -1 with cpu 0 is what a tracepoint's BPF
    // program needs (it runs wherever the tracepoint fires).
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const libbpf_sys::perf_event_attr,
            -1,
            0,
            -1,
            libbpf_sys::PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    copies::owned_fd(fd as i32).map_err(|_| std::io::Error::last_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ld_imm64(value: u64) -> [libbpf_sys::bpf_insn; 2] {
        let mut first = libbpf_sys::bpf_insn {
            code: LOAD_IMM64,
            ..Default::default()
        };
        first.imm = value as u32 as i32;
        let second = libbpf_sys::bpf_insn {
            imm: (value >> 32) as u32 as i32,
            ..Default::default()
        };
        [first, second]
    }

    #[test]
    fn the_placeholder_is_replaced_by_the_number() {
        let mut insns: Vec<libbpf_sys::bpf_insn> = Vec::new();
        insns.extend(ld_imm64(7));
        insns.extend(ld_imm64(NUMBER_PLACEHOLDER));
        numbered(&mut insns, 0x1_0000_0003).unwrap();
        assert_eq!((insns[2].imm, insns[3].imm), (3, 1));
        assert_eq!(insns[0].imm, 7);
    }

    #[test]
    fn a_program_without_exactly_one_placeholder_is_refused() {
        let mut none: Vec<libbpf_sys::bpf_insn> = ld_imm64(7).to_vec();
        assert!(numbered(&mut none, 1)
            .unwrap_err()
            .contains("0 placeholders"));
        let mut two: Vec<libbpf_sys::bpf_insn> = Vec::new();
        two.extend(ld_imm64(NUMBER_PLACEHOLDER));
        two.extend(ld_imm64(NUMBER_PLACEHOLDER));
        assert!(numbered(&mut two, 1)
            .unwrap_err()
            .contains("2 placeholders"));
    }
}
