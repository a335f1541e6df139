//! Probes on numbered sites, tracepoints and sampled perf events: one copy of a template
//! program per site, the site's number written into the copy's instructions, so that its
//! events name their site on every kernel (see sites.bpf.c). Raw tracepoints are attached
//! by name; a tracepoint known only by its trace record through a perf event of its id; a
//! sampled perf event through one perf event on every CPU.

use std::ffi::CString;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd};

use libbpf_rs::libbpf_sys;
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{AsRawLibbpf, OpenObject, ProgramMut};

use super::copies::{self, CopyTarget};
use super::{Placed, ProbeConfig, SharedMaps};

mod skeleton {
    include!(concat!(env!("OUT_DIR"), "/sites.skel.rs"));
}
use skeleton::{SitesSkel, SitesSkelBuilder};

/// `SITE_NUMBER_PLACEHOLDER` in sites.bpf.c.
const NUMBER_PLACEHOLDER: u64 = 0x7273_7461_7054_5021;
/// `BPF_LD | BPF_IMM | BPF_DW`: the first half of a 64-bit immediate load.
const LOAD_IMM64: u8 = 0x18;

/// A tracepoint to attach; its number is its index among the tracepoints given to
/// [`place`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracepointTarget {
    /// `sched:sched_switch`, for messages.
    pub display: String,
    pub attach: TracepointAttach,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TracepointAttach {
    /// A raw tracepoint, by name (`sched_switch`).
    Raw(String),
    /// A trace event known by its record, by its id.
    Record(u64),
}

/// A perf event to sample on every CPU; its number is its index among the samples given
/// to [`place`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleTarget {
    /// The probe point, for messages.
    pub display: String,
    pub perf_type: u32,
    pub config: u64,
    /// `sample_period`, or (`frequency`) `sample_freq`.
    pub period: u64,
    pub frequency: bool,
}

/// The attached copies. Dropping them detaches.
pub(super) struct SiteProbes<'obj> {
    /// The templates' object, whose BTF the copies' function info refers to.
    _skel: SitesSkel<'obj>,
    /// Each copy's program and what holds it on its site (a raw tracepoint's fd, or perf
    /// events and their links).
    attachments: Vec<(OwnedFd, Vec<OwnedFd>)>,
}

/// Threads that close the attachments at once when they are detached.
const DETACH_THREADS: usize = 64;

impl Drop for SiteProbes<'_> {
    /// Detaches in parallel: the kernel waits for an RCU grace period as it releases each
    /// perf link (a syscall tracepoint's, in perf_event_detach_bpf_prog), some 0.7 s under
    /// TCG, so closing the links of `nd_syscall.*` (about 700) one after the other took
    /// minutes; waits made at once share their grace periods.
    fn drop(&mut self) {
        let attachments = std::mem::take(&mut self.attachments);
        if attachments.len() < 2 {
            return;
        }
        let per_thread = attachments.len().div_ceil(DETACH_THREADS);
        let mut attachments = attachments.into_iter();
        std::thread::scope(|scope| loop {
            let share: Vec<_> = attachments.by_ref().take(per_thread).collect();
            if share.is_empty() {
                break;
            }
            // A thread that cannot start leaves its share to be closed here, in turn.
            let spawned = std::thread::Builder::new().spawn_scoped(scope, move || drop(share));
            drop(spawned);
        });
    }
}

impl Placed for SiteProbes<'_> {
    fn kernel_misses(&self) -> u64 {
        self.attachments
            .iter()
            .map(|(program, _)| super::kernel_misses(program))
            .sum()
    }
}

/// Loads the templates and attaches a copy to every site, in order; the first that cannot
/// be attached is the error, and nothing stays attached.
pub(super) fn place<'obj>(
    storage: &'obj mut MaybeUninit<OpenObject>,
    config: &ProbeConfig,
    shared: &SharedMaps,
    tracepoints: &[TracepointTarget],
    samples: &[SampleTarget],
) -> Result<SiteProbes<'obj>, String> {
    let open = open_configured!(
        SitesSkelBuilder,
        storage,
        config,
        shared,
        "tracepoint and sampling programs"
    );
    let skel = open
        .load()
        .map_err(|err| format!("the kernel refuses tracepoint and sampling programs ({err})"))?;
    // SAFETY: the object is loaded and lives as long as the skeleton.
    let object_btf =
        unsafe { libbpf_sys::bpf_object__btf_fd(skel.object().as_libbpf_object().as_ptr()) };
    let mut attachments = Vec::with_capacity(tracepoints.len() + samples.len());
    for (number, target) in tracepoints.iter().enumerate() {
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
                let mut attr = perf_attr(libbpf_sys::PERF_TYPE_TRACEPOINT, *id);
                attr.__bindgen_anon_1.sample_period = 1;
                let links = attach_perf_events(&program, &attr, &[0])
                    .map_err(|err| format!("cannot attach to {}: {err}", target.display))?;
                (program, links)
            }
        };
        attachments.push(attached);
    }
    let cpus = online_cpus()?;
    for (number, target) in samples.iter().enumerate() {
        let template = &skel.progs.on_sample;
        let program = copy(template, object_btf, CopyTarget::Sample, number)?;
        let mut attr = perf_attr(target.perf_type, target.config);
        attr.__bindgen_anon_1.sample_period = target.period;
        if target.frequency {
            attr.set_freq(1);
        }
        let links = attach_perf_events(&program, &attr, &cpus)
            .map_err(|err| format!("cannot sample {}: {err}", target.display))?;
        attachments.push((program, links));
    }
    Ok(SiteProbes {
        _skel: skel,
        attachments,
    })
}

/// A perf_event_attr of this type and config, its other fields zero.
fn perf_attr(perf_type: u32, config: u64) -> libbpf_sys::perf_event_attr {
    libbpf_sys::perf_event_attr {
        type_: perf_type,
        size: std::mem::size_of::<libbpf_sys::perf_event_attr>() as u32,
        config,
        ..Default::default()
    }
}

/// Opens the perf event `attr` on each of `cpus` (every task's, system-wide) and links
/// `program` to each: the fds of the events and of the links. A tracepoint's program runs
/// wherever the tracepoint fires, so it needs the event on one CPU only.
fn attach_perf_events(
    program: &OwnedFd,
    attr: &libbpf_sys::perf_event_attr,
    cpus: &[i32],
) -> std::io::Result<Vec<OwnedFd>> {
    let mut fds = Vec::with_capacity(2 * cpus.len());
    for &cpu in cpus {
        // SAFETY: attr is a valid perf_event_attr; pid -1 with a cpu is every task there.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_perf_event_open,
                attr as *const libbpf_sys::perf_event_attr,
                -1,
                cpu,
                -1,
                libbpf_sys::PERF_FLAG_FD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let event = copies::owned_fd(fd as i32)?;
        // SAFETY: both fds are open; null opts ask for defaults.
        let link = unsafe {
            libbpf_sys::bpf_link_create(
                program.as_raw_fd(),
                event.as_raw_fd(),
                libbpf_sys::BPF_PERF_EVENT,
                std::ptr::null(),
            )
        };
        fds.push(event);
        fds.push(copies::owned_fd(link)?);
    }
    Ok(fds)
}

/// The CPUs that are online, from /sys/devices/system/cpu/online (`0-3,5`).
fn online_cpus() -> Result<Vec<i32>, String> {
    const ONLINE: &str = "/sys/devices/system/cpu/online";
    let text =
        std::fs::read_to_string(ONLINE).map_err(|err| format!("cannot read {ONLINE}: {err}"))?;
    parse_cpu_list(&text).ok_or_else(|| format!("{ONLINE}: {:?} is not a CPU list", text.trim()))
}

fn parse_cpu_list(text: &str) -> Option<Vec<i32>> {
    let mut cpus = Vec::new();
    for range in text.trim().split(',').filter(|range| !range.is_empty()) {
        let (first, last): (i32, i32) = match range.split_once('-') {
            Some((first, last)) => (first.parse().ok()?, last.parse().ok()?),
            None => {
                let cpu = range.parse().ok()?;
                (cpu, cpu)
            }
        };
        if first > last {
            return None;
        }
        cpus.extend(first..=last);
    }
    Some(cpus)
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
    fn cpu_lists_are_read_as_sysfs_writes_them() {
        assert_eq!(parse_cpu_list("0-3,5\n"), Some(vec![0, 1, 2, 3, 5]));
        assert_eq!(parse_cpu_list("0\n"), Some(vec![0]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
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
