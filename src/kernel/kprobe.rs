//! kprobe/kretprobe probes, made with perf_event_open and held by BPF links: the
//! fallback for kernels that refuse fentry, and for functions the trampoline cannot take
//! (no BTF, struct return values). One program of each kind serves every function; the
//! attach cookie tells them apart.

use std::mem::MaybeUninit;
use std::path::Path;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{libbpf_sys, AsRawLibbpf, Link, OpenObject, ProgramMut};

use super::{Placed, Placement, ProbeConfig, ProbeSide, ProbeTarget, SharedMaps};

mod skeleton {
    include!(concat!(env!("OUT_DIR"), "/kprobe.skel.rs"));
}
use skeleton::{KprobeSkel, KprobeSkelBuilder};

/// Where the kernel announces the kprobe PMU that perf_event_open-based kprobes need.
/// Without it libbpf would fall back to tracefs kprobe_events, which outlive a killed
/// rstap; we refuse that instead.
const KPROBE_PMU: &str = "/sys/bus/event_source/devices/kprobe/type";

struct KprobeProbes<'obj> {
    skel: KprobeSkel<'obj>,
    links: Vec<Link>,
}

/// Loads the programs and attaches the targets `which` names, one probe per function and
/// side. Fails if the kernel has no kprobes.
pub(super) fn place<'obj>(
    storage: &'obj mut MaybeUninit<OpenObject>,
    config: &ProbeConfig,
    shared: &SharedMaps,
    targets: &[ProbeTarget],
    which: &[usize],
) -> Result<Placement<'obj>, String> {
    let mut probes = KprobeProbes::load(storage, config, shared)?;
    let refused = which
        .iter()
        .filter_map(|&index| {
            probes
                .attach(&targets[index])
                .err()
                .map(|reason| (index, reason))
        })
        .collect();
    Ok(Placement {
        probes: Box::new(probes),
        refused,
    })
}

impl Placed for KprobeProbes<'_> {
    fn kernel_misses(&self) -> u64 {
        super::kernel_misses(&self.skel.progs.on_entry)
            + super::kernel_misses(&self.skel.progs.on_return)
    }
}

impl<'obj> KprobeProbes<'obj> {
    fn load(
        storage: &'obj mut MaybeUninit<OpenObject>,
        config: &ProbeConfig,
        shared: &SharedMaps,
    ) -> Result<Self, String> {
        if !Path::new(KPROBE_PMU).exists() {
            return Err("the kernel has no kprobe support (CONFIG_KPROBES is off)".into());
        }
        let open = open_configured!(
            KprobeSkelBuilder,
            storage,
            config,
            shared,
            "kprobe programs"
        );
        let skel = open
            .load()
            .map_err(|err| format!("the kernel refuses kprobe programs ({err})"))?;
        Ok(KprobeProbes {
            skel,
            links: Vec::new(),
        })
    }

    /// Attaches the entry and return programs to `target`, as it asks; on failure
    /// nothing of it stays attached.
    fn attach(&mut self, target: &ProbeTarget) -> Result<(), String> {
        let mut attached = Vec::with_capacity(2);
        for side in target.sides() {
            let (program, retprobe) = match side {
                ProbeSide::Entry => (&self.skel.progs.on_entry, false),
                ProbeSide::Return => (&self.skel.progs.on_return, true),
            };
            attached.push(attach_at_address(program, retprobe, target.address)?);
        }
        self.links.extend(attached);
        Ok(())
    }
}

/// Attaches by address rather than by name: names are not unique in the kernel (static
/// functions in different files), addresses are. The cookie carries the address to the
/// program.
fn attach_at_address(
    program: &ProgramMut<'_>,
    retprobe: bool,
    address: u64,
) -> Result<Link, String> {
    let opts = libbpf_sys::bpf_kprobe_opts {
        sz: std::mem::size_of::<libbpf_sys::bpf_kprobe_opts>() as _,
        bpf_cookie: address,
        offset: address as _,
        retprobe,
        ..Default::default()
    };
    // SAFETY: the program is loaded and outlives the call; a null function name with an
    // offset asks the kernel for a probe at that absolute address.
    let link = unsafe {
        libbpf_sys::bpf_program__attach_kprobe_opts(
            program.as_libbpf_object().as_ptr(),
            std::ptr::null(),
            &opts,
        )
    };
    match std::ptr::NonNull::new(link) {
        // SAFETY: libbpf returned a new link we now own.
        Some(link) => Ok(unsafe { Link::from_ptr(link) }),
        None => Err(format!(
            "kprobe attach failed: {}",
            std::io::Error::last_os_error()
        )),
    }
}
