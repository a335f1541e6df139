//! libbpf's own diagnostics. By default libbpf prints to stderr, including advice that
//! is wrong for rstap (a `ulimit -l` hint on EPERM); rstap says what failed in its own
//! words and shows libbpf's lines only when asked for detail (`-vv`).

use std::sync::atomic::{AtomicBool, Ordering};

use libbpf_rs::PrintLevel;

static SHOW: AtomicBool = AtomicBool::new(false);

/// Routes libbpf's messages through rstap: shown on stderr only when `show` is set.
pub fn install(show: bool) {
    SHOW.store(show, Ordering::Relaxed);
    libbpf_rs::set_print(Some((PrintLevel::Debug, forward)));
}

fn forward(level: PrintLevel, message: String) {
    if SHOW.load(Ordering::Relaxed) && !matches!(level, PrintLevel::Debug) {
        eprint!("libbpf: {message}");
    }
}
