//! kprobe.multi + kretprobe.multi probes: one link per side places a program on a whole
//! batch of functions with a single ftrace filter update, which is what makes thousands of
//! functions attach in a fraction of a second. Functions are named by address (names are
//! not unique in the kernel), and each function's cookie is its address.

use std::mem::MaybeUninit;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{libbpf_sys, AsRawLibbpf, Link, OpenObject, ProgramMut};

use super::batch::{attach_in_batches, BatchError};
use super::{Placed, Placement, ProbeConfig, ProbeTarget, SharedMaps};

mod skeleton {
    include!(concat!(env!("OUT_DIR"), "/kprobe_multi.skel.rs"));
}
use skeleton::{KprobeMultiSkel, KprobeMultiSkelBuilder};

/// Which way a multi link runs its program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MultiLink {
    Entry,
    Return,
    /// At entry and, unless the entry run said otherwise, at return.
    Session,
}

struct KprobeMultiProbes<'obj> {
    skel: KprobeMultiSkel<'obj>,
    /// Held for their effect: dropping a link detaches its functions.
    _links: Vec<Link>,
}

impl Placed for KprobeMultiProbes<'_> {
    fn kernel_misses(&self) -> u64 {
        super::kernel_misses(&self.skel.progs.on_entry)
            + super::kernel_misses(&self.skel.progs.on_return)
    }
}

/// Loads the programs and attaches the targets `which` names, entry and return as each
/// asks. Fails if the kernel cannot do kprobe.multi at all.
pub(super) fn place<'obj>(
    storage: &'obj mut MaybeUninit<OpenObject>,
    config: &ProbeConfig,
    shared: &SharedMaps,
    targets: &[ProbeTarget],
    which: &[usize],
) -> Result<Placement<'obj>, String> {
    let open = open_configured!(
        KprobeMultiSkelBuilder,
        storage,
        config,
        shared,
        "kprobe.multi programs"
    );
    let skel = open
        .load()
        .map_err(|err| format!("the kernel refuses kprobe.multi programs ({err})"))?;

    let address = |index: usize| targets[index].address;
    let returns: Vec<usize> = which.iter().copied().filter(|&i| targets[i].ret).collect();
    let mut attach_returns = |items: &[usize]| {
        let addresses: Vec<u64> = items.iter().map(|&i| address(i)).collect();
        attach_multi(&skel.progs.on_return, &addresses, MultiLink::Return)
    };
    let mut return_links =
        attach_in_batches(&returns, &mut attach_returns).map_err(|err| refusal(&err))?;

    let entries: Vec<usize> = which
        .iter()
        .copied()
        .filter(|&i| targets[i].entry && !return_links.refused.iter().any(|(r, _)| *r == i))
        .collect();
    let mut attach_entries = |items: &[usize]| {
        let addresses: Vec<u64> = items.iter().map(|&i| address(i)).collect();
        attach_multi(&skel.progs.on_entry, &addresses, MultiLink::Entry)
    };
    let entry_links =
        attach_in_batches(&entries, &mut attach_entries).map_err(|err| refusal(&err))?;

    // A function whose entry the kernel refused must not report returns alone: place the
    // return links again without it.
    let half_attached: Vec<usize> = entry_links
        .refused
        .iter()
        .map(|(index, _)| *index)
        .filter(|index| targets[*index].ret)
        .collect();
    if !half_attached.is_empty() {
        drop(return_links);
        let returns: Vec<usize> = returns
            .into_iter()
            .filter(|index| !half_attached.contains(index))
            .collect();
        return_links =
            attach_in_batches(&returns, &mut attach_returns).map_err(|err| refusal(&err))?;
    }

    let mut refused = return_links.refused;
    refused.extend(entry_links.refused);
    let links = return_links
        .links
        .into_iter()
        .chain(entry_links.links)
        .collect();
    Ok(Placement {
        probes: Box::new(KprobeMultiProbes {
            skel,
            _links: links,
        }),
        refused,
    })
}

fn refusal(err: &BatchError) -> String {
    format!(
        "the kernel cannot attach kprobe.multi links ({})",
        err.message
    )
}

/// Places `program` on every function in `addresses` with one link, each function's
/// address as its cookie.
pub(super) fn attach_multi(
    program: &ProgramMut<'_>,
    addresses: &[u64],
    kind: MultiLink,
) -> Result<Link, BatchError> {
    let opts = libbpf_sys::bpf_kprobe_multi_opts {
        sz: std::mem::size_of::<libbpf_sys::bpf_kprobe_multi_opts>() as _,
        addrs: addresses.as_ptr().cast(),
        cookies: addresses.as_ptr(),
        cnt: addresses.len() as _,
        retprobe: kind == MultiLink::Return,
        session: kind == MultiLink::Session,
        ..Default::default()
    };
    // SAFETY: the program is loaded and outlives the call; addrs and cookies point to
    // `cnt` live u64s (c_ulong is u64 on the 64-bit targets rstap builds for), which the
    // kernel copies before the call returns.
    let link = unsafe {
        libbpf_sys::bpf_program__attach_kprobe_multi_opts(
            program.as_libbpf_object().as_ptr(),
            std::ptr::null(),
            &opts,
        )
    };
    match std::ptr::NonNull::new(link) {
        // SAFETY: libbpf returned a new link we now own.
        Some(link) => Ok(unsafe { Link::from_ptr(link) }),
        None => Err(BatchError::last_os_error("attach failed")),
    }
}
