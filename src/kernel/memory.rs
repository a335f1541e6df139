//! Reads of kernel memory after the event, for what a script computes: a fetch program
//! whose first operation loads the address (see [`LateProgram`]) runs on demand in the
//! kernel through memory.bpf.c, with `BPF_PROG_TEST_RUN`, and its payload comes back as an
//! event's would. Such a read sees the memory as it is when the probe body runs in user
//! space, a little after the event; a freed object reads as a fault, never as a crash.

use std::mem::MaybeUninit;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, OpenObject, ProgramInput};

use super::fetch::{FetchOp, FetchProgram, PayloadValue, PROGRAM_BYTES};

mod skeleton {
    include!(concat!(env!("OUT_DIR"), "/memory.skel.rs"));
}
use skeleton::{types, MemorySkel, MemorySkelBuilder};

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error(
        "cannot load the program that reads kernel memory after an event ({0}): the script \
         reads memory through an address it computes, which needs BPF_PROG_TEST_RUN of a raw \
         tracepoint program (Linux 5.10) and bpf_loop (5.17)"
    )]
    Load(String),
    #[error("cannot read kernel memory after the event: {0}")]
    Run(String),
    /// A read `@defined` guards, which the kernel's types do not allow.
    #[error("{0}")]
    Unavailable(String),
}

/// A read for an address known only when the body runs: a fetch program whose first
/// operation is a [`FetchOp::Const`] that [`KernelMemory::run`] replaces with the address,
/// and where the value lies in its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateFetch {
    pub program: FetchProgram,
    pub value: PayloadValue,
}

impl LateFetch {
    /// The program reading from `address`.
    fn at(&self, address: u64) -> FetchProgram {
        let mut program = self.program.clone();
        if let Some(first @ FetchOp::Const(_)) = program.ops.first_mut() {
            *first = FetchOp::Const(address as i64);
        }
        program
    }
}

/// The loaded reader.
pub struct KernelMemory {
    skel: MemorySkel<'static>,
    /// The object's .bss as the kernel holds it, with the program and payload in it.
    bss: Vec<u8>,
}

const BSS_KEY: [u8; 4] = 0u32.to_ne_bytes();
const PROGRAM_AT: usize = std::mem::offset_of!(types::bss, late_read);
const PAYLOAD_AT: usize = PROGRAM_AT + std::mem::offset_of!(types::late_read, payload);

impl KernelMemory {
    pub fn load() -> Result<Self, MemoryError> {
        // A skeleton borrows the memory it is opened in for as long as it lives; the
        // reader lives until rstap exits, so that memory (a few words) is never given back.
        let storage: &'static mut MaybeUninit<OpenObject> =
            Box::leak(Box::new(MaybeUninit::uninit()));
        let load = |err: libbpf_rs::Error| MemoryError::Load(err.to_string());
        let skel = MemorySkelBuilder::default()
            .open(storage)
            .and_then(|open| open.load())
            .map_err(load)?;
        let bss = vec![0u8; std::mem::size_of::<types::bss>()];
        Ok(KernelMemory { skel, bss })
    }

    /// Runs `program` from `address` and gives its payload (fault words first).
    pub fn run(&mut self, fetch: &LateFetch, address: u64) -> Result<&[u8], MemoryError> {
        let run = |err: libbpf_rs::Error| MemoryError::Run(err.to_string());
        let encoded = fetch.at(address).encode();
        self.bss[PROGRAM_AT..PROGRAM_AT + PROGRAM_BYTES].copy_from_slice(&encoded);
        let map = &self.skel.maps.bss;
        map.update(&BSS_KEY, &self.bss, MapFlags::ANY)
            .map_err(run)?;
        self.skel
            .progs
            .read_memory
            .test_run(ProgramInput::default())
            .map_err(run)?;
        let after = map
            .lookup(&BSS_KEY, MapFlags::ANY)
            .map_err(run)?
            .ok_or_else(|| MemoryError::Run("the reader's memory is gone".into()))?;
        if after.len() != self.bss.len() {
            return Err(MemoryError::Run("the reader's memory changed size".into()));
        }
        self.bss = after;
        Ok(&self.bss[PAYLOAD_AT..])
    }
}

/// The script's late reads, and the reader that makes them.
pub struct LateReader {
    memory: KernelMemory,
    /// Each read, or why the kernel's types do not allow it (see `resolve::targets`).
    fetches: Vec<Result<LateFetch, String>>,
}

impl LateReader {
    pub fn new(memory: KernelMemory, fetches: Vec<Result<LateFetch, String>>) -> Self {
        LateReader { memory, fetches }
    }

    /// Late read number `read` from `address`: where its value lies, and the payload.
    pub fn run(&mut self, read: usize, address: u64) -> Result<(PayloadValue, &[u8]), MemoryError> {
        let fetch = match self.fetches.get(read) {
            Some(Ok(fetch)) => fetch,
            Some(Err(why)) => return Err(MemoryError::Unavailable(why.clone())),
            None => return Err(MemoryError::Run(format!("no late read {read}"))),
        };
        let value = fetch.value;
        let payload = self.memory.run(fetch, address)?;
        Ok((value, payload))
    }
}
