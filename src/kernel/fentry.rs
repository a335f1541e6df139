//! fentry/fexit probes: BPF trampolines, the cheapest way into a kernel function.
//!
//! The skeleton's two programs are loaded once, as templates; every target function then
//! gets its own copy of their instructions, loaded with that function's BTF id. Loading a
//! copy skips re-opening the object and re-parsing the kernel's BTF per function, which is
//! what makes attaching hundreds of functions take seconds less.

use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd};

use libbpf_rs::btf::types::{Func, FuncProto};
use libbpf_rs::btf::{Btf, BtfKind, ReferencesType};
use libbpf_rs::libbpf_sys;
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{AsRawLibbpf, OpenObject};

use super::copies::{self, CopyTarget};
use super::{Placed, Placement, ProbeConfig, ProbeSide, ProbeTarget, SharedMaps};

mod skeleton {
    include!(concat!(env!("OUT_DIR"), "/fentry.skel.rs"));
}
use skeleton::{FentrySkel, FentrySkelBuilder};

/// x86-64 passes six integer arguments in registers.
const MAX_REGISTER_ARGUMENTS: usize = 6;

struct FentryProbes<'obj> {
    skel: FentrySkel<'obj>,
    /// The object's BTF, which the copies' function and line info refer to.
    object_btf: i32,
    /// Each attached copy: its target's index, its program and the link that holds it on
    /// the function. Dropping them detaches.
    attachments: Vec<(usize, OwnedFd, OwnedFd)>,
}

/// Loads the templates and attaches copies to the targets `which` names, one by one.
/// Fails if the kernel refuses fentry programs altogether.
pub(super) fn place<'obj>(
    storage: &'obj mut MaybeUninit<OpenObject>,
    config: &ProbeConfig,
    shared: &SharedMaps,
    targets: &[ProbeTarget],
    which: &[usize],
) -> Result<Placement<'obj>, String> {
    // Held only while attaching: the parsed kernel BTF is several megabytes.
    let btf = Btf::from_vmlinux().map_err(|err| {
        format!("the kernel has no BTF type information (/sys/kernel/btf/vmlinux: {err})")
    })?;
    let candidates: Vec<&ProbeTarget> = which.iter().map(|&index| &targets[index]).collect();
    let mut probes = FentryProbes::load(storage, config, shared, &btf, &candidates)?;
    let refused = which
        .iter()
        .filter_map(|&index| {
            probes
                .attach(&btf, index, &targets[index])
                .err()
                .map(|reason| (index, reason))
        })
        .collect();
    Ok(Placement {
        probes: Box::new(probes),
        refused,
    })
}

impl Placed for FentryProbes<'_> {
    /// Each copy is skipped by the kernel when it would run inside itself.
    fn kernel_misses(&self) -> u64 {
        self.attachments
            .iter()
            .map(|(_, program, _)| super::kernel_misses(program))
            .sum()
    }

    /// Entry and return copies of one function add up to its count.
    fn kernel_misses_by_target(&self) -> Vec<(usize, u64)> {
        let mut misses: Vec<(usize, u64)> = Vec::new();
        for (target, program, _) in &self.attachments {
            let count = super::kernel_misses(program);
            match misses.last_mut() {
                Some((last, total)) if last == target => *total += count,
                _ => misses.push((*target, count)),
            }
        }
        misses
    }
}

impl<'obj> FentryProbes<'obj> {
    /// Loads the template programs. The kernel insists that a tracing program names a
    /// function at load time, so the templates name the first target they can serve.
    fn load(
        storage: &'obj mut MaybeUninit<OpenObject>,
        config: &ProbeConfig,
        shared: &SharedMaps,
        btf: &Btf<'_>,
        targets: &[&ProbeTarget],
    ) -> Result<Self, String> {
        let template_target = targets
            .iter()
            .find(|target| target.name_is_unique && can_serve_as_template(btf, &target.name))
            .ok_or("no matched function has BTF type information fentry can use")?
            .name
            .clone();
        let mut open = open_configured!(
            FentrySkelBuilder,
            storage,
            config,
            shared,
            "fentry programs"
        );
        for program in [&mut open.progs.on_entry, &mut open.progs.on_return] {
            program
                .set_attach_target(0, Some(template_target.clone()))
                .map_err(|err| format!("cannot target {template_target}: {err}"))?;
        }
        let skel = open.load().map_err(|err| describe_load_error(&err))?;
        // SAFETY: the object is loaded and lives as long as the skeleton.
        let object_btf =
            unsafe { libbpf_sys::bpf_object__btf_fd(skel.object().as_libbpf_object().as_ptr()) };
        Ok(FentryProbes {
            skel,
            object_btf,
            attachments: Vec::new(),
        })
    }

    /// Attaches copies of the entry and return templates to `target` (the target at
    /// `index`), as it asks; on failure nothing of it stays attached and the error says why
    /// the kernel refused.
    fn attach(&mut self, btf: &Btf<'_>, index: usize, target: &ProbeTarget) -> Result<(), String> {
        if !target.name_is_unique {
            return Err("fentry finds functions by name, and this name is not unique".into());
        }
        let btf_id = btf
            .type_by_name::<Func<'_>>(&target.name)
            .map(|func| u32::from(func.type_id()))
            .ok_or("no BTF type information for this function")?;
        let mut attached = Vec::with_capacity(2);
        for side in target.sides() {
            let (template, attach_type) = match side {
                ProbeSide::Entry => (&self.skel.progs.on_entry, libbpf_sys::BPF_TRACE_FENTRY),
                ProbeSide::Return => (&self.skel.progs.on_return, libbpf_sys::BPF_TRACE_FEXIT),
            };
            let program = copies::load(
                template,
                self.object_btf,
                CopyTarget::Function {
                    attach_type,
                    btf_id,
                },
                None,
            )?;
            // SAFETY: a plain syscall wrapper; a null opts pointer asks for defaults.
            let link = unsafe {
                libbpf_sys::bpf_link_create(program.as_raw_fd(), 0, attach_type, std::ptr::null())
            };
            let link =
                copies::owned_fd(link).map_err(|err| format!("fentry attach failed: {err}"))?;
            attached.push((index, program, link));
        }
        self.attachments.extend(attached);
        Ok(())
    }
}

/// Whether a function can be the templates' load-time target: one the kernel will
/// certainly accept for both fentry and fexit (register arguments only, no struct or
/// union return value).
fn can_serve_as_template(btf: &Btf<'_>, name: &str) -> bool {
    let Some(func) = btf.type_by_name::<Func<'_>>(name) else {
        return false;
    };
    let Ok(proto) = FuncProto::try_from(func.referenced_type()) else {
        return false;
    };
    let return_type = proto.referenced_type().skip_mods_and_typedefs();
    proto.len() <= MAX_REGISTER_ARGUMENTS
        && !matches!(return_type.kind(), BtfKind::Struct | BtfKind::Union)
}

/// Turns libbpf's load failure into words: EPERM here means the kernel refuses tracing
/// programs altogether (lockdown, a sandbox), not a missing privilege, which was checked.
fn describe_load_error(err: &libbpf_rs::Error) -> String {
    match err.kind() {
        libbpf_rs::ErrorKind::PermissionDenied => {
            "the kernel refuses fentry/fexit programs (bpf(BPF_PROG_LOAD) failed with EPERM)".into()
        }
        _ => format!("the kernel refuses fentry/fexit programs ({err})"),
    }
}
