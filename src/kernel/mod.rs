//! The kernel side: BPF programs that report function entries and returns through one
//! ring buffer, and the attach mechanisms that place them (one module each, its
//! `.bpf.c` beside it).
//!
//! Which mechanism serves a function is found out by trying, never by reading the kernel
//! version: kprobe.session, then kprobe.multi, then fentry/fexit copies, then single
//! kprobes, each later one offered only what the earlier ones refused.

/// Opens a skeleton into `storage` and points it at rstap's shared maps and settings
/// (see [`configure`]). Every mechanism's skeleton has the same maps and read-only data,
/// but each is its own generated type, so this is a macro rather than a function.
macro_rules! open_configured {
    ($builder:ty, $storage:expr, $config:expr, $shared:expr, $what:literal) => {{
        let mut open = <$builder>::default()
            .open($storage)
            .map_err(|err| format!(concat!("cannot open the ", $what, ": {}"), err))?;
        super::configure(
            super::SharedMapsOf {
                events: &mut open.maps.events,
                cpu_state: &mut open.maps.cpu_state,
                fetch_programs: &mut open.maps.fetch_programs,
                event_scratch: &mut open.maps.event_scratch,
            },
            open.maps
                .rodata_data
                .as_deref_mut()
                .map(|rodata| super::Settings {
                    target_tgid: &mut rodata.target_tgid,
                    rstap_tgid: &mut rodata.rstap_tgid,
                    wakeup_bytes: &mut rodata.wakeup_bytes,
                    fetch_enabled: &mut rodata.fetch_enabled,
                }),
            $config,
            $shared,
        )?;
        open
    }};
}

mod batch;
mod copies;
pub mod event;
mod fentry;
pub mod fetch;
mod kprobe;
mod kprobe_multi;
mod kprobe_session;
pub mod libbpf_log;
pub mod memory;
mod sites;

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd};

use libbpf_rs::{MapCore, MapFlags, MapHandle, MapType, OpenMapMut, OpenObject};

pub use event::{Event, EventKind};
pub use sites::{SampleTarget, TracepointAttach, TracepointTarget};

/// A kernel function to probe, and on which side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTarget {
    pub name: String,
    pub address: u64,
    /// Whether no other kernel function has this name: fentry finds functions by name.
    pub name_is_unique: bool,
    pub entry: bool,
    pub ret: bool,
}

impl ProbeTarget {
    fn sides(&self) -> impl Iterator<Item = ProbeSide> {
        let entry = self.entry.then_some(ProbeSide::Entry);
        let ret = self.ret.then_some(ProbeSide::Return);
        entry.into_iter().chain(ret)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProbeSide {
    Entry,
    Return,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachPolicy {
    /// The first mechanism the kernel takes, in [`Mechanism::PREFERENCE`] order, each
    /// later one serving what the earlier ones refused.
    Auto,
    /// This mechanism only.
    Only(Mechanism),
}

impl AttachPolicy {
    fn mechanisms(self) -> &'static [Mechanism] {
        match self {
            AttachPolicy::Auto => &Mechanism::PREFERENCE,
            AttachPolicy::Only(mechanism) => match mechanism {
                Mechanism::Session => &[Mechanism::Session],
                Mechanism::Multi => &[Mechanism::Multi],
                Mechanism::Fentry => &[Mechanism::Fentry],
                Mechanism::Kprobe => &[Mechanism::Kprobe],
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mechanism {
    Session,
    Multi,
    Fentry,
    Kprobe,
}

impl Mechanism {
    /// Cheapest to attach first: one link for thousands of functions, then two, then
    /// one program and link per function and side.
    pub const PREFERENCE: [Mechanism; 4] = [
        Mechanism::Session,
        Mechanism::Multi,
        Mechanism::Fentry,
        Mechanism::Kprobe,
    ];
}

impl std::fmt::Display for Mechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mechanism::Session => "kprobe.session",
            Mechanism::Multi => "kprobe.multi",
            Mechanism::Fentry => "fentry/fexit",
            Mechanism::Kprobe => "kprobe/kretprobe",
        })
    }
}

/// Settings baked into the BPF programs before they are loaded.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// Only this process's threads are reported; `None` reports every process.
    pub target_tgid: Option<u32>,
    /// rstap's own process, never reported.
    pub rstap_tgid: u32,
    /// Ring buffer size: a power of two, at least a page.
    pub ring_buffer_bytes: u32,
    /// What each function entry or return reads of the kernel's data, for those that do.
    pub fetches: Vec<fetch::SiteFetch>,
}

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error(
        "cannot trace kernel functions on this kernel ({release}): {refusals}; \
         run rstap on a kernel with BPF trampolines or kprobes, or in a VM (vm/rstap-vm)"
    )]
    NoFunctionTracing { release: String, refusals: String },
    #[error("--attach {mechanism}: {reason}")]
    Refused {
        mechanism: Mechanism,
        reason: String,
    },
    #[error("cannot create the BPF maps every probe shares: {0}")]
    SharedMaps(String),
    #[error("{0}")]
    Sites(String),
    #[error("none of the {count} matched functions could be attached; {name}: {reason}")]
    NothingAttached {
        count: usize,
        name: String,
        reason: String,
    },
}

/// Memory the BPF objects live in; it must outlive the [`KernelProbes`] made from it.
pub struct ProgramStorage {
    session: MaybeUninit<OpenObject>,
    multi: MaybeUninit<OpenObject>,
    fentry: MaybeUninit<OpenObject>,
    kprobe: MaybeUninit<OpenObject>,
    sites: MaybeUninit<OpenObject>,
}

impl Default for ProgramStorage {
    fn default() -> Self {
        ProgramStorage {
            session: MaybeUninit::uninit(),
            multi: MaybeUninit::uninit(),
            fentry: MaybeUninit::uninit(),
            kprobe: MaybeUninit::uninit(),
            sites: MaybeUninit::uninit(),
        }
    }
}

/// A target the kernel would not take, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub target: usize,
    pub reason: String,
}

/// A mechanism that was tried and refused as a whole, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub mechanism: Mechanism,
    pub reason: String,
}

/// One mechanism's loaded programs and links, as the strategy chain holds them.
trait Placed {
    /// Hits the kernel skipped before running its programs, because a BPF program was
    /// already running on that CPU.
    fn kernel_misses(&self) -> u64;

    /// The same per target, for mechanisms whose programs each serve one function; empty
    /// where one program serves many and the kernel keeps one count for all of them.
    fn kernel_misses_by_target(&self) -> Vec<(usize, u64)> {
        Vec::new()
    }
}

/// What a mechanism made of the targets it was given.
struct Placement<'obj> {
    probes: Box<dyn Placed + 'obj>,
    /// Targets it could not attach, with the kernel's reason.
    refused: Vec<(usize, String)>,
}

/// Probes placed in the kernel. Dropping this detaches them all; so does the process
/// dying, since every attachment is held by a file descriptor.
pub struct KernelProbes<'obj> {
    /// Declared before `shared`: programs go before the maps they write to.
    placed: Vec<Box<dyn Placed + 'obj>>,
    shared: SharedMaps,
    /// For each target, the mechanism that serves it; `None` if it was skipped.
    mechanisms: Vec<Option<Mechanism>>,
    skipped: Vec<Skipped>,
    refusals: Vec<Refusal>,
}

impl<'obj> KernelProbes<'obj> {
    /// Attaches every target function with the first mechanism of `policy` that takes
    /// it, every tracepoint and every sample. Functions no mechanism takes are skipped (see
    /// [`KernelProbes::skipped`]); it is an error only if none could be attached. A
    /// tracepoint or sample that cannot be attached is an error.
    pub fn attach(
        storage: &'obj mut ProgramStorage,
        targets: &[ProbeTarget],
        (tracepoints, samples): (&[TracepointTarget], &[SampleTarget]),
        config: &ProbeConfig,
        policy: AttachPolicy,
    ) -> Result<Self, KernelError> {
        raise_open_file_limit(targets.len() + tracepoints.len() + samples.len());
        let shared = SharedMaps::create(config).map_err(KernelError::SharedMaps)?;
        let ProgramStorage {
            session,
            multi,
            fentry,
            kprobe,
            sites,
        } = storage;
        let (mut session, mut multi, mut fentry, mut kprobe) =
            (Some(session), Some(multi), Some(fentry), Some(kprobe));

        let mut mechanisms = vec![None; targets.len()];
        let mut reasons: Vec<Option<String>> = vec![None; targets.len()];
        let mut placed = Vec::new();
        let mut refusals = Vec::new();
        for &mechanism in policy.mechanisms() {
            let pending: Vec<usize> = (0..targets.len())
                .filter(|&index| mechanisms[index].is_none())
                .collect();
            if pending.is_empty() {
                break;
            }
            let storage_of = |slot: &mut Option<&'obj mut MaybeUninit<OpenObject>>| {
                slot.take()
                    .ok_or_else(|| format!("{mechanism} was already loaded"))
            };
            let placement = match mechanism {
                Mechanism::Session => storage_of(&mut session).and_then(|storage| {
                    kprobe_session::place(storage, config, &shared, targets, &pending)
                }),
                Mechanism::Multi => storage_of(&mut multi).and_then(|storage| {
                    kprobe_multi::place(storage, config, &shared, targets, &pending)
                }),
                Mechanism::Fentry => storage_of(&mut fentry)
                    .and_then(|storage| fentry::place(storage, config, &shared, targets, &pending)),
                Mechanism::Kprobe => storage_of(&mut kprobe)
                    .and_then(|storage| kprobe::place(storage, config, &shared, targets, &pending)),
            };
            let placement = match placement {
                Ok(placement) => placement,
                Err(reason) if policy == AttachPolicy::Only(mechanism) => {
                    return Err(KernelError::Refused { mechanism, reason })
                }
                Err(reason) => {
                    refusals.push(Refusal { mechanism, reason });
                    continue;
                }
            };
            let refused_here: Vec<usize> = placement.refused.iter().map(|(i, _)| *i).collect();
            for (index, reason) in placement.refused {
                reasons[index] = Some(reason);
            }
            let mut served = false;
            for index in pending.into_iter().filter(|i| !refused_here.contains(i)) {
                mechanisms[index] = Some(mechanism);
                reasons[index] = None;
                served = true;
            }
            if served {
                placed.push(placement.probes);
            }
        }

        if placed.is_empty() && !refusals.is_empty() && reasons.iter().all(Option::is_none) {
            return Err(KernelError::NoFunctionTracing {
                release: kernel_release(),
                refusals: describe_refusals(&refusals),
            });
        }
        let skipped: Vec<Skipped> = mechanisms
            .iter()
            .zip(reasons)
            .enumerate()
            .filter(|(_, (mechanism, _))| mechanism.is_none())
            .map(|(target, (_, reason))| Skipped {
                target,
                reason: reason.unwrap_or_else(|| describe_refusals(&refusals)),
            })
            .collect();
        if skipped.len() == targets.len() {
            if let Some(first) = skipped.first() {
                return Err(KernelError::NothingAttached {
                    count: targets.len(),
                    name: targets[first.target].name.clone(),
                    reason: first.reason.clone(),
                });
            }
        }
        if !tracepoints.is_empty() || !samples.is_empty() {
            let probes = sites::place(sites, config, &shared, tracepoints, samples)
                .map_err(KernelError::Sites)?;
            placed.push(Box::new(probes));
        }
        Ok(KernelProbes {
            placed,
            shared,
            mechanisms,
            skipped,
            refusals,
        })
    }

    /// The ring buffer every program writes to.
    pub fn events(&self) -> &dyn MapCore {
        &self.shared.events
    }

    /// Events the programs could not report because the ring buffer was full.
    pub fn lost_events(&self) -> u64 {
        self.shared.cpu_totals().lost_events
    }

    /// Probe hits not reported because a BPF program was already running on that CPU:
    /// turned away by rstap's guard, or by the kernel before the program ran.
    pub fn recursion_misses(&self) -> u64 {
        let kernel: u64 = self
            .placed
            .iter()
            .map(|placed| placed.kernel_misses())
            .sum();
        self.shared.cpu_totals().recursion_drops + kernel
    }

    /// The targets the kernel skipped hits of, with how many, where it counts them per
    /// function (fentry); in target order.
    pub fn misses_by_target(&self) -> Vec<(usize, u64)> {
        let mut misses: Vec<(usize, u64)> = self
            .placed
            .iter()
            .flat_map(|placed| placed.kernel_misses_by_target())
            .filter(|&(_, count)| count > 0)
            .collect();
        misses.sort_unstable();
        misses
    }

    /// Hits rstap's own nesting guard turned away (see event.bpf.h).
    pub fn nesting_drops(&self) -> u64 {
        self.shared.cpu_totals().recursion_drops
    }

    pub fn mechanism(&self, target: usize) -> Option<Mechanism> {
        self.mechanisms.get(target).copied().flatten()
    }

    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Mechanisms tried before (or instead of) the ones that serve the targets.
    pub fn refusals(&self) -> &[Refusal] {
        &self.refusals
    }

    pub fn attached_count(&self) -> usize {
        self.mechanisms.iter().filter(|m| m.is_some()).count()
    }
}

fn describe_refusals(refusals: &[Refusal]) -> String {
    let described: Vec<String> = refusals
        .iter()
        .map(|refusal| format!("{}: {}", refusal.mechanism, refusal.reason))
        .collect();
    if described.is_empty() {
        "not attached".into()
    } else {
        described.join("; ")
    }
}

/// The maps every loaded object shares, so that one reader sees every program's events
/// and the recursion guard spans all of rstap's programs on a CPU.
struct SharedMaps {
    events: MapHandle,
    cpu_state: MapHandle,
    fetch_programs: MapHandle,
    event_scratch: MapHandle,
}

/// One object's copies of the shared maps, before it is loaded.
struct SharedMapsOf<'a, 'obj> {
    events: &'a mut OpenMapMut<'obj>,
    cpu_state: &'a mut OpenMapMut<'obj>,
    fetch_programs: &'a mut OpenMapMut<'obj>,
    event_scratch: &'a mut OpenMapMut<'obj>,
}

/// Mirrors `struct cpu_state` in event.bpf.h.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct CpuState {
    depth: u32,
    unused: u32,
    lost_events: u64,
    recursion_drops: u64,
}

const CPU_STATE_BYTES: usize = std::mem::size_of::<CpuState>();
const _: () = assert!(CPU_STATE_BYTES == 24);

impl CpuState {
    fn decode(bytes: &[u8]) -> CpuState {
        let field = |offset: usize| {
            bytes
                .get(offset..offset + 8)
                .and_then(|bytes| bytes.try_into().ok())
                .map_or(0, u64::from_ne_bytes)
        };
        CpuState {
            lost_events: field(8),
            recursion_drops: field(16),
            ..CpuState::default()
        }
    }
}

impl SharedMaps {
    fn create(config: &ProbeConfig) -> Result<Self, String> {
        let opts = libbpf_rs::libbpf_sys::bpf_map_create_opts {
            sz: std::mem::size_of::<libbpf_rs::libbpf_sys::bpf_map_create_opts>() as _,
            ..Default::default()
        };
        let events = MapHandle::create(
            MapType::RingBuf,
            Some("events"),
            0,
            0,
            config.ring_buffer_bytes,
            &opts,
        )
        .map_err(|err| format!("ring buffer of {} bytes: {err}", config.ring_buffer_bytes))?;
        let key = std::mem::size_of::<u32>() as u32;
        let cpu_state = MapHandle::create(
            MapType::PercpuArray,
            Some("cpu_state"),
            key,
            CPU_STATE_BYTES as u32,
            1,
            &opts,
        )
        .map_err(|err| format!("per-CPU state: {err}"))?;
        let fetch_programs = MapHandle::create(
            MapType::Hash,
            Some("fetch_programs"),
            16,
            fetch::PROGRAM_BYTES as u32,
            config.fetches.len().max(1) as u32,
            &opts,
        )
        .map_err(|err| format!("fetch programs: {err}"))?;
        for site in &config.fetches {
            fetch_programs
                .update(&site.key(), &site.program.encode(), MapFlags::ANY)
                .map_err(|err| format!("fetch program of {:#x}: {err}", site.site))?;
        }
        let event_scratch = MapHandle::create(
            MapType::PercpuArray,
            Some("event_scratch"),
            key,
            fetch::SCRATCH_BYTES as u32,
            MAX_CONTEXT_NESTING,
            &opts,
        )
        .map_err(|err| format!("per-CPU event records: {err}"))?;
        Ok(SharedMaps {
            events,
            cpu_state,
            fetch_programs,
            event_scratch,
        })
    }

    /// The per-CPU counts, summed over the CPUs.
    fn cpu_totals(&self) -> CpuState {
        let per_cpu = self
            .cpu_state
            .lookup_percpu(&0u32.to_ne_bytes(), MapFlags::ANY)
            .ok()
            .flatten()
            .unwrap_or_default();
        per_cpu.iter().map(|bytes| CpuState::decode(bytes)).fold(
            CpuState::default(),
            |total, cpu| CpuState {
                lost_events: total.lost_events + cpu.lost_events,
                recursion_drops: total.recursion_drops + cpu.recursion_drops,
                ..total
            },
        )
    }
}

/// The read-only settings every program has (see event.bpf.h), in one object's data.
struct Settings<'a> {
    target_tgid: &'a mut u32,
    rstap_tgid: &'a mut u32,
    wakeup_bytes: &'a mut u64,
    fetch_enabled: &'a mut u32,
}

/// How deeply rstap's programs nest on a CPU: `MAX_CONTEXT_NESTING` in event.bpf.h.
const MAX_CONTEXT_NESTING: u32 = 4;

/// Records pending in the ring buffer past this share of it wake the reader at once; below
/// it they wait for its next timed poll (see event.bpf.h).
const WAKEUP_SHARE: u32 = 4;

/// Points an object's shared maps at rstap's, and fills in its read-only settings.
fn configure(
    maps: SharedMapsOf<'_, '_>,
    settings: Option<Settings<'_>>,
    config: &ProbeConfig,
    shared: &SharedMaps,
) -> Result<(), String> {
    for (map, handle, what) in [
        (maps.events, &shared.events, "the ring buffer"),
        (maps.cpu_state, &shared.cpu_state, "the per-CPU state"),
        (
            maps.fetch_programs,
            &shared.fetch_programs,
            "the fetch programs",
        ),
        (
            maps.event_scratch,
            &shared.event_scratch,
            "the per-CPU event records",
        ),
    ] {
        map.reuse_fd(handle.as_fd())
            .map_err(|err| format!("cannot share {what}: {err}"))?;
    }
    let settings = settings.ok_or("the BPF object has no read-only data")?;
    *settings.target_tgid = config.target_tgid.unwrap_or(0);
    *settings.rstap_tgid = config.rstap_tgid;
    *settings.wakeup_bytes = u64::from(config.ring_buffer_bytes / WAKEUP_SHARE);
    *settings.fetch_enabled = u32::from(!config.fetches.is_empty());
    Ok(())
}

/// Hits of `program` the kernel skipped before running it, because a BPF program was
/// already running on that CPU (kernels count this for fentry since 5.x, for kprobes
/// since 6.7).
fn kernel_misses(program: &impl AsFd) -> u64 {
    let mut info = libbpf_rs::libbpf_sys::bpf_prog_info::default();
    let mut len = std::mem::size_of::<libbpf_rs::libbpf_sys::bpf_prog_info>() as u32;
    // SAFETY: info is a properly sized, writable bpf_prog_info.
    let ret = unsafe {
        libbpf_rs::libbpf_sys::bpf_prog_get_info_by_fd(
            program.as_fd().as_raw_fd(),
            &mut info,
            &mut len,
        )
    };
    if ret == 0 {
        info.recursion_misses
    } else {
        0
    }
}

/// File descriptors one target can cost: fentry holds a program and a link per side.
const FILES_PER_TARGET: u64 = 4;
/// Descriptors for everything else: the objects, their maps, the output, libbpf's own.
const FILES_BESIDES_TARGETS: u64 = 256;

/// Makes room for every probe's file descriptors: the usual soft limit of 1,024 is
/// reached at a few hundred fentry functions. Best effort: if the limit cannot be raised,
/// the functions beyond it are skipped with the kernel's EMFILE as their reason.
fn raise_open_file_limit(targets: usize) {
    let needed = (targets as u64)
        .saturating_mul(FILES_PER_TARGET)
        .saturating_add(FILES_BESIDES_TARGETS);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: limit is a valid rlimit to write to.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 || limit.rlim_cur >= needed
    {
        return;
    }
    let raised = libc::rlimit {
        rlim_cur: needed,
        rlim_max: limit.rlim_max.max(needed),
    };
    // SAFETY: raised is a valid rlimit; failure leaves the limit as it was.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) };
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|release| release.trim().to_string())
        .unwrap_or_else(|_| "unknown release".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_state_counts_decode_from_the_kernels_layout() {
        let mut bytes = Vec::new();
        bytes.extend(3u32.to_ne_bytes());
        bytes.extend(0u32.to_ne_bytes());
        bytes.extend(17u64.to_ne_bytes());
        bytes.extend(5u64.to_ne_bytes());
        let state = CpuState::decode(&bytes);
        assert_eq!((state.lost_events, state.recursion_drops), (17, 5));
        let short = CpuState::decode(&bytes[..12]);
        assert_eq!((short.lost_events, short.recursion_drops), (0, 0));
    }

    #[test]
    fn auto_tries_every_mechanism_cheapest_first_and_a_forced_one_alone() {
        assert_eq!(
            AttachPolicy::Auto.mechanisms(),
            [
                Mechanism::Session,
                Mechanism::Multi,
                Mechanism::Fentry,
                Mechanism::Kprobe
            ]
        );
        for mechanism in Mechanism::PREFERENCE {
            assert_eq!(AttachPolicy::Only(mechanism).mechanisms(), [mechanism]);
        }
    }

    #[test]
    fn refusals_are_described_in_the_order_tried() {
        let refusals = [
            Refusal {
                mechanism: Mechanism::Session,
                reason: "no kfunc".into(),
            },
            Refusal {
                mechanism: Mechanism::Multi,
                reason: "no fprobe".into(),
            },
        ];
        assert_eq!(
            describe_refusals(&refusals),
            "kprobe.session: no kfunc; kprobe.multi: no fprobe"
        );
        assert_eq!(describe_refusals(&[]), "not attached");
    }
}
