//! The kernel side: BPF programs that report function entries and returns through one
//! ring buffer, and the attach mechanisms that place them (one module each, its
//! `.bpf.c` beside it).
//!
//! Which mechanism serves a function is found out by trying, never by reading the kernel
//! version: fentry/fexit first, then kprobes for what fentry refused.

pub mod event;
mod fentry;
mod kprobe;
pub mod libbpf_log;

use std::mem::MaybeUninit;

use libbpf_rs::{MapCore, OpenMapMut, OpenObject};

pub use event::{Event, EventKind};

use fentry::FentryProbes;
use kprobe::KprobeProbes;

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
    /// fentry/fexit where the kernel takes it, kprobes for the rest.
    Auto,
    Fentry,
    Kprobe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Fentry,
    Kprobe,
}

impl std::fmt::Display for Mechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
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
}

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error(
        "cannot trace kernel functions on this kernel ({release}): {fentry}, and {kprobe}; \
         run rstap on a kernel with BPF trampolines or kprobes, or in a VM (vm/rstap-vm)"
    )]
    NoFunctionTracing {
        release: String,
        fentry: String,
        kprobe: String,
    },
    #[error("--attach fentry: {0}")]
    FentryRefused(String),
    #[error("--attach kprobe: {0}")]
    KprobeRefused(String),
    #[error("none of the {count} matched functions could be attached; {name}: {reason}")]
    NothingAttached {
        count: usize,
        name: String,
        reason: String,
    },
}

/// Memory the BPF objects live in; it must outlive the [`KernelProbes`] made from it.
pub struct ProgramStorage {
    fentry: MaybeUninit<OpenObject>,
    kprobe: MaybeUninit<OpenObject>,
}

impl Default for ProgramStorage {
    fn default() -> Self {
        ProgramStorage {
            fentry: MaybeUninit::uninit(),
            kprobe: MaybeUninit::uninit(),
        }
    }
}

/// A target the kernel would not take, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub target: usize,
    pub reason: String,
}

/// Probes placed in the kernel. Dropping this detaches them all; so does the process
/// dying, since every attachment is held by a file descriptor.
pub struct KernelProbes<'obj> {
    fentry: Option<FentryProbes<'obj>>,
    kprobe: Option<KprobeProbes<'obj>>,
    /// For each target, the mechanism that serves it; `None` if it was skipped.
    mechanisms: Vec<Option<Mechanism>>,
    skipped: Vec<Skipped>,
}

impl<'obj> KernelProbes<'obj> {
    pub fn attach(
        storage: &'obj mut ProgramStorage,
        targets: &[ProbeTarget],
        config: &ProbeConfig,
        policy: AttachPolicy,
    ) -> Result<Self, KernelError> {
        let mut mechanisms = vec![None; targets.len()];
        let mut refusals: Vec<Option<String>> = vec![None; targets.len()];

        let mut fentry_refusal = None;
        let fentry = if policy == AttachPolicy::Kprobe {
            None
        } else {
            match FentryProbes::load(&mut storage.fentry, config, targets) {
                Ok(mut probes) => {
                    for (index, target) in targets.iter().enumerate() {
                        match probes.attach(target) {
                            Ok(()) => mechanisms[index] = Some(Mechanism::Fentry),
                            Err(reason) => refusals[index] = Some(reason),
                        }
                    }
                    Some(probes)
                }
                Err(reason) if policy == AttachPolicy::Fentry => {
                    return Err(KernelError::FentryRefused(reason))
                }
                Err(reason) => {
                    fentry_refusal = Some(reason);
                    None
                }
            }
        };

        let needs_kprobes =
            policy != AttachPolicy::Fentry && mechanisms.iter().any(Option::is_none);
        let mut kprobe_refusal = None;
        let kprobe = if needs_kprobes {
            let shared_events = fentry.as_ref().map(FentryProbes::events);
            match KprobeProbes::load(&mut storage.kprobe, config, shared_events) {
                Ok(mut probes) => {
                    for (index, target) in targets.iter().enumerate() {
                        if mechanisms[index].is_some() {
                            continue;
                        }
                        match probes.attach(target) {
                            Ok(()) => mechanisms[index] = Some(Mechanism::Kprobe),
                            Err(reason) => refusals[index] = Some(reason),
                        }
                    }
                    Some(probes)
                }
                Err(reason) if policy == AttachPolicy::Kprobe => {
                    return Err(KernelError::KprobeRefused(reason))
                }
                Err(reason) => {
                    kprobe_refusal = Some(reason);
                    None
                }
            }
        } else {
            None
        };

        if fentry.is_none() && kprobe.is_none() {
            return Err(KernelError::NoFunctionTracing {
                release: kernel_release(),
                fentry: fentry_refusal.unwrap_or_else(|| "fentry was not tried".into()),
                kprobe: kprobe_refusal.unwrap_or_else(|| "kprobes were not tried".into()),
            });
        }

        let skipped: Vec<Skipped> = mechanisms
            .iter()
            .zip(refusals)
            .enumerate()
            .filter(|(_, (mechanism, _))| mechanism.is_none())
            .map(|(target, (_, reason))| Skipped {
                target,
                reason: reason
                    .or_else(|| kprobe_refusal.clone())
                    .unwrap_or_else(|| "not attached".into()),
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
        Ok(KernelProbes {
            fentry,
            kprobe,
            mechanisms,
            skipped,
        })
    }

    /// The ring buffer every program writes to.
    pub fn events(&self) -> &dyn MapCore {
        match (&self.fentry, &self.kprobe) {
            (Some(fentry), _) => fentry.events(),
            (None, Some(kprobe)) => kprobe.events(),
            (None, None) => unreachable!("attach() returns an error when nothing loaded"),
        }
    }

    /// Events the programs could not report because the ring buffer was full.
    pub fn lost_events(&self) -> u64 {
        self.fentry.as_ref().map_or(0, FentryProbes::lost_events)
            + self.kprobe.as_ref().map_or(0, KprobeProbes::lost_events)
    }

    /// Probe hits the kernel skipped because a BPF program was already running on that
    /// CPU (an interrupt arrived inside a probe).
    pub fn recursion_misses(&self) -> u64 {
        self.fentry
            .as_ref()
            .map_or(0, FentryProbes::recursion_misses)
    }

    pub fn mechanism(&self, target: usize) -> Option<Mechanism> {
        self.mechanisms.get(target).copied().flatten()
    }

    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    pub fn attached_count(&self) -> usize {
        self.mechanisms.iter().filter(|m| m.is_some()).count()
    }
}

/// Sizes the ring buffer and fills in the programs' read-only settings.
fn configure(
    events: &mut OpenMapMut<'_>,
    tgids: Option<(&mut u32, &mut u32)>,
    config: &ProbeConfig,
) -> Result<(), String> {
    events
        .set_max_entries(config.ring_buffer_bytes)
        .map_err(|err| format!("cannot size the ring buffer: {err}"))?;
    let (target_tgid, rstap_tgid) = tgids.ok_or("the BPF object has no read-only data")?;
    *target_tgid = config.target_tgid.unwrap_or(0);
    *rstap_tgid = config.rstap_tgid;
    Ok(())
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|release| release.trim().to_string())
        .unwrap_or_else(|_| "unknown release".into())
}
