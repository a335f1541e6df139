//! The record every probe program writes to the ring buffer, decoded.

use std::mem::size_of;

/// Mirrors `struct event` in event.bpf.h.
#[repr(C)]
#[derive(Clone, Copy)]
struct RawEvent {
    timestamp_ns: u64,
    function_address: u64,
    return_address: u64,
    return_value: u64,
    outer_return_address: u64,
    tgid: u32,
    tid: u32,
    cpu: u32,
    kind: u32,
    comm: [u8; 16],
}

/// Bytes of the header every record starts with; a payload, if any, follows it.
pub const HEADER_BYTES: usize = 72;
const _: () = assert!(size_of::<RawEvent>() == HEADER_BYTES);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Entry,
    Return,
    /// A tracepoint was hit; the header's function address is the tracepoint's number.
    Tracepoint,
    /// A perf event was sampled; the function address is the sample's number, the return
    /// address where the task was interrupted.
    Sample,
}

impl EventKind {
    /// `enum event_kind` in event.bpf.h.
    pub fn code(self) -> u32 {
        match self {
            EventKind::Entry => 0,
            EventKind::Return => 1,
            EventKind::Tracepoint => 2,
            EventKind::Sample => 3,
        }
    }
}

/// One function entry or return, as seen by a probe program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// CLOCK_MONOTONIC nanoseconds.
    pub timestamp_ns: u64,
    /// Entry address of the probed function.
    pub function_address: u64,
    /// For returns, the address in the caller the function returned to.
    pub return_address: u64,
    pub return_value: u64,
    /// For fexit returns, the return address of the frame above: the real caller when
    /// `return_address` lies in a trampoline (see fentry.bpf.c).
    pub outer_return_address: u64,
    pub pid: u32,
    pub tid: u32,
    pub cpu: u32,
    pub kind: EventKind,
    comm: [u8; 16],
}

impl Event {
    /// Decodes a ring buffer record; `None` if it is not one rstap's programs wrote.
    pub fn decode(bytes: &[u8]) -> Option<Event> {
        if bytes.len() < size_of::<RawEvent>() {
            return None;
        }
        // SAFETY: the length was checked, RawEvent is plain old data valid for any bit
        // pattern, and read_unaligned makes no alignment assumption.
        let raw: RawEvent = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
        let kind = match raw.kind {
            0 => EventKind::Entry,
            1 => EventKind::Return,
            2 => EventKind::Tracepoint,
            3 => EventKind::Sample,
            _ => return None,
        };
        Some(Event {
            timestamp_ns: raw.timestamp_ns,
            function_address: raw.function_address,
            return_address: raw.return_address,
            return_value: raw.return_value,
            outer_return_address: raw.outer_return_address,
            pid: raw.tgid,
            tid: raw.tid,
            cpu: raw.cpu,
            kind,
            comm: raw.comm,
        })
    }

    /// The task's command name, as the kernel keeps it (at most 15 bytes).
    pub fn comm(&self) -> &str {
        let len = self
            .comm
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.comm.len());
        match std::str::from_utf8(&self.comm[..len]) {
            Ok(name) => name,
            // A comm cut in the middle of a multi-byte character: keep the valid prefix.
            Err(err) => std::str::from_utf8(&self.comm[..err.valid_up_to()]).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(kind: u32, comm: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for value in [1_000u64, 0xffff_ffff_8143_1450, 0xffff_ffff_8119_7f42, 7, 9] {
            bytes.extend_from_slice(&value.to_ne_bytes());
        }
        for value in [42u32, 43, 1, kind] {
            bytes.extend_from_slice(&value.to_ne_bytes());
        }
        let mut name = [0u8; 16];
        name[..comm.len()].copy_from_slice(comm);
        bytes.extend_from_slice(&name);
        bytes
    }

    #[test]
    fn decodes_every_field() {
        let event = Event::decode(&encode(1, b"init")).unwrap();
        assert_eq!(event.timestamp_ns, 1_000);
        assert_eq!(event.function_address, 0xffff_ffff_8143_1450);
        assert_eq!(event.return_address, 0xffff_ffff_8119_7f42);
        assert_eq!(event.return_value, 7);
        assert_eq!(event.outer_return_address, 9);
        assert_eq!((event.pid, event.tid, event.cpu), (42, 43, 1));
        assert_eq!(event.kind, EventKind::Return);
        assert_eq!(event.comm(), "init");
    }

    #[test]
    fn rejects_short_records_and_unknown_kinds() {
        assert!(Event::decode(&encode(0, b"x")[..71]).is_none());
        assert!(Event::decode(&encode(9, b"x")).is_none());
    }

    #[test]
    fn full_length_comm_has_no_terminator() {
        let event = Event::decode(&encode(0, b"0123456789abcdef")).unwrap();
        assert_eq!(event.comm(), "0123456789abcdef");
    }

    #[test]
    fn comm_cut_inside_a_character_keeps_the_valid_prefix() {
        let mut comm = b"abcdefghijklmn".to_vec();
        comm.push(0xc3);
        let event = Event::decode(&encode(0, &comm)).unwrap();
        assert_eq!(event.comm(), "abcdefghijklmn");
    }
}
