//! Whether the tests run as root, which rstap needs to load any program.

pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}
