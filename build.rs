//! Compiles the BPF programs under src/kernel/ with clang and generates their libbpf-rs
//! skeletons into OUT_DIR, one per attach mechanism.

use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

const PROGRAMS: &[&str] = &[
    "fentry",
    "kprobe",
    "kprobe_multi",
    "kprobe_session",
    "memory",
    "sites",
];

fn main() {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let kernel_dir = PathBuf::from("src/kernel");
    for name in PROGRAMS {
        let source = kernel_dir.join(format!("{name}.bpf.c"));
        let skeleton = out_dir.join(format!("{name}.skel.rs"));
        SkeletonBuilder::new()
            .source(&source)
            .clang_args([
                "-I",
                "src/kernel",
                "-D__TARGET_ARCH_x86",
                "-Wall",
                "-O2",
                "-g",
            ])
            .build_and_generate(&skeleton)
            .unwrap_or_else(|err| panic!("building {}: {err:#}", source.display()));
        println!("cargo:rerun-if-changed={}", source.display());
    }
    println!("cargo:rerun-if-changed=src/kernel/event.bpf.h");
    println!("cargo:rerun-if-changed=src/kernel/fetch.bpf.h");
    println!("cargo:rerun-if-changed=src/kernel/vmlinux.h");
}
