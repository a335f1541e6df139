//! Whether this process may load and attach BPF tracing programs.

/// Capability numbers from linux/capability.h.
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "rstap needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN) to load tracing programs, \
     and this process lacks {missing}: run it as root (sudo rstap ...)"
)]
pub struct PrivilegeError {
    missing: String,
}

/// Checks the effective capabilities of this process.
pub fn check() -> Result<(), PrivilegeError> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    check_status(&status)
}

fn check_status(status: &str) -> Result<(), PrivilegeError> {
    let effective = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    let has = |cap: u32| effective & (1 << cap) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return Ok(());
    }
    let missing: Vec<&str> = [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
        .into_iter()
        .filter(|&(cap, _)| !has(cap))
        .map(|(_, name)| name)
        .collect();
    Err(PrivilegeError {
        missing: missing.join(" and "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_sys_admin_or_bpf_with_perfmon_suffice() {
        assert!(check_status("CapEff:\t000001ffffffffff\n").is_ok());
        assert!(check_status("CapEff:\t0000000000200000\n").is_ok());
        assert!(check_status("CapEff:\t000000c000000000\n").is_ok());
    }

    #[test]
    fn unprivileged_names_what_is_missing() {
        let err = check_status("CapEff:\t0000000000000000\n").unwrap_err();
        assert!(
            err.to_string().contains("lacks CAP_BPF and CAP_PERFMON"),
            "{err}"
        );
        let err = check_status("CapEff:\t0000008000000000\n").unwrap_err();
        assert!(err.to_string().contains("lacks CAP_PERFMON:"), "{err}");
    }
}
