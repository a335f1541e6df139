//! kprobe.session probes: one program and one link per batch serve entry and return
//! together, half the links of kprobe.multi + kretprobe.multi, and no return hook at all
//! on functions whose returns the script does not probe.

use std::mem::MaybeUninit;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags, OpenObject};

use super::batch::{attach_in_batches, BatchError};
use super::kprobe_multi::{attach_multi, MultiLink};
use super::{Placed, Placement, ProbeConfig, ProbeTarget, SharedMaps};

mod skeleton {
    include!(concat!(env!("OUT_DIR"), "/kprobe_session.skel.rs"));
}
use skeleton::{KprobeSessionSkel, KprobeSessionSkelBuilder};

/// Mirrors `enum wanted_side` in kprobe_session.bpf.c.
const WANT_ENTRY: u32 = 1;
const WANT_RETURN: u32 = 2;

struct KprobeSessionProbes<'obj> {
    skel: KprobeSessionSkel<'obj>,
    /// Held for their effect: dropping a link detaches its functions.
    _links: Vec<Link>,
    /// Probe hits one skipped run of the program costs: see [`hits_per_skipped_run`].
    hits_per_skipped_run: u64,
}

impl Placed for KprobeSessionProbes<'_> {
    fn kernel_misses(&self) -> u64 {
        super::kernel_misses(&self.skel.progs.on_call) * self.hits_per_skipped_run
    }
}

/// The kernel counts a skipped run of the session program once, but when it skips the
/// entry run it never schedules the return run either: a call whose sides are both probed
/// loses two hits. (A skipped return run alone would need the return, but not the entry,
/// to happen while another program runs on the CPU, which interrupts, running to their end
/// inside that program, cannot do.) Where the functions differ in sides, one hit per
/// skipped run is the count that never overstates.
fn hits_per_skipped_run(targets: &[ProbeTarget], which: &[usize]) -> u64 {
    if which
        .iter()
        .all(|&index| targets[index].sides().count() == 2)
    {
        2
    } else {
        1
    }
}

fn wanted_sides(target: &ProbeTarget) -> u32 {
    let entry = if target.entry { WANT_ENTRY } else { 0 };
    let ret = if target.ret { WANT_RETURN } else { 0 };
    entry | ret
}

/// Loads the program and attaches the targets `which` names. Fails if the kernel has no
/// kprobe.session (before Linux 6.10, the program's kfunc does not exist).
pub(super) fn place<'obj>(
    storage: &'obj mut MaybeUninit<OpenObject>,
    config: &ProbeConfig,
    shared: &SharedMaps,
    targets: &[ProbeTarget],
    which: &[usize],
) -> Result<Placement<'obj>, String> {
    let mut open = open_configured!(
        KprobeSessionSkelBuilder,
        storage,
        config,
        shared,
        "kprobe.session program"
    );
    let entries = u32::try_from(which.len().max(1))
        .map_err(|_| format!("{} functions are too many for one map", which.len()))?;
    open.maps
        .wanted_sides
        .set_max_entries(entries)
        .map_err(|err| format!("cannot size the kprobe.session map: {err}"))?;
    let skel = open.load().map_err(|err| {
        format!("the kernel refuses kprobe.session programs (it needs Linux 6.10 or later: {err})")
    })?;
    for &index in which {
        let target = &targets[index];
        skel.maps
            .wanted_sides
            .update(
                &target.address.to_ne_bytes(),
                &wanted_sides(target).to_ne_bytes(),
                MapFlags::ANY,
            )
            .map_err(|err| format!("cannot fill the kprobe.session map: {err}"))?;
    }

    let mut attach = |items: &[usize]| {
        let addresses: Vec<u64> = items.iter().map(|&i| targets[i].address).collect();
        attach_multi(&skel.progs.on_call, &addresses, MultiLink::Session)
    };
    let batched = attach_in_batches(which, &mut attach).map_err(|err: BatchError| {
        format!(
            "the kernel cannot attach kprobe.session links ({})",
            err.message
        )
    })?;
    Ok(Placement {
        probes: Box::new(KprobeSessionProbes {
            skel,
            _links: batched.links,
            hits_per_skipped_run: hits_per_skipped_run(targets, which),
        }),
        refused: batched.refused,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(entry: bool, ret: bool) -> ProbeTarget {
        ProbeTarget {
            name: "f".into(),
            address: 0xffff_ffff_8100_0000,
            name_is_unique: true,
            entry,
            ret,
        }
    }

    #[test]
    fn sides_become_the_programs_bits() {
        assert_eq!(wanted_sides(&target(true, false)), WANT_ENTRY);
        assert_eq!(wanted_sides(&target(false, true)), WANT_RETURN);
        assert_eq!(wanted_sides(&target(true, true)), WANT_ENTRY | WANT_RETURN);
    }

    #[test]
    fn a_skipped_call_costs_both_sides_where_every_function_has_both() {
        let both = [target(true, true), target(true, true)];
        assert_eq!(hits_per_skipped_run(&both, &[0, 1]), 2);
        let mixed = [target(true, true), target(false, true)];
        assert_eq!(hits_per_skipped_run(&mixed, &[0, 1]), 1);
        assert_eq!(hits_per_skipped_run(&mixed, &[0]), 2);
    }
}
