//! The fetch programs: what the kernel side reads at an event for the script's target
//! variables, written as data that one generic BPF routine (`fetch_step` in fetch.bpf.h, run by bpf_loop)
//! interprets, so that no C compiler is needed when rstap runs.
//!
//! A program is a list of operations on one register. Each value of the payload is made by
//! operations that start from an argument or the return value, add offsets and load through
//! pointers, and end by storing the register (or the string it points to) into the payload.
//! A load that faults stops that value: its store writes the faulting address instead and
//! sets the value's bit in the payload's first words, so that the script gets SystemTap's
//! "read fault" error for it and every other value stays good.
//!
//! The layout here and `struct rstap_fetch_program` in fetch.bpf.h are one ABI; the test at the
//! end checks the encoding field by field against the C side's constants.

/// Operations a program may have: `FETCH_MAX_OPS` in fetch.bpf.h.
pub const MAX_OPS: usize = 128;
/// Values a program keeps pushed at once: `FETCH_SAVED_MAX` in fetch.bpf.h.
pub const MAX_SAVED: usize = 4;
/// Payload bytes after the event header: `PAYLOAD_MAX` in fetch.bpf.h.
pub const MAX_PAYLOAD: usize = 1024;
/// The longest string one operation copies, terminator included: `STRING_MAX`.
pub const MAX_STRING: usize = 256;
/// Return addresses one backtrace holds: `STACK_MAX` in fetch.bpf.h, over 8.
pub const MAX_FRAMES: usize = 30;
/// The payload's first two words: bit `i` of the first set when value `i` faulted, of the
/// second when it faulted at its final copy (the string or the `kernel_long()` read) rather
/// than on the way there.
pub const FAULT_MASK_BYTES: usize = 16;
/// Values one payload carries: one bit each in the fault mask.
pub const MAX_VALUES: usize = 64;
/// Bytes of one encoded operation: `struct rstap_fetch_op`.
const OP_BYTES: usize = 16;
/// Bytes of an encoded program: `struct rstap_fetch_program`.
pub const PROGRAM_BYTES: usize = 8 + MAX_OPS * OP_BYTES;

/// One step of a fetch program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchOp {
    /// The register becomes the function's argument `n` (0-based, at most 5). A tracepoint
    /// read through its trace record has one argument: the record's address.
    Argument(u8),
    /// The register becomes the return value.
    ReturnValue,
    /// The register becomes the address of the current task's `task_struct`.
    CurrentTask,

    /// The register grows by `offset`: a member's address, an array element's.
    Add(i64),
    /// The register becomes the number.
    Const(i64),
    /// The register is pushed onto the saved values (at most `MAX_SAVED`), for a sum.
    Push,
    /// The register becomes the value popped plus (or, `minus`, less) the register.
    Pop { minus: bool },
    /// The register becomes the `bytes` (1, 2, 4 or 8) at its value plus `offset`,
    /// zero-extended. A fault is a copy fault when `copy` (the read `kernel_long()` and
    /// the like make), else a read fault on the way.
    Load { offset: i64, bytes: u8, copy: bool },
    /// The register becomes the `bytes` of the current task's user memory at its value,
    /// zero-extended; a fault is the value's copy fault (`user_short()` and the like).
    UserLoad { bytes: u8 },
    /// The register's 8 bytes go to the payload at `dest`; this ends a value.
    Store { dest: u16 },
    /// The NUL-terminated string the register points to, at most `max` bytes with the NUL,
    /// goes to the payload at `dest` (from user memory when `user`); this ends a value.
    String { dest: u16, max: u16, user: bool },
    /// The kernel stack's return addresses, innermost first: their count at `dest`, then up
    /// to `frames` of them; this ends a value.
    Stack { dest: u16, frames: u16 },
}

impl FetchOp {
    /// Whether the operation ends a value (its fault bit is the next one).
    pub fn ends_value(self) -> bool {
        matches!(
            self,
            FetchOp::Store { .. } | FetchOp::String { .. } | FetchOp::Stack { .. }
        )
    }

    /// `enum rstap_fetch_code`, `size`, `dest` and `operand` of `struct rstap_fetch_op`.
    fn fields(self) -> (u8, u16, u16, i64) {
        match self {
            FetchOp::Argument(n) => (1, 0, 0, i64::from(n)),
            FetchOp::ReturnValue => (2, 0, 0, 0),
            FetchOp::Add(offset) => (3, 0, 0, offset),
            FetchOp::Load {
                offset,
                bytes,
                copy,
            } => (if copy { 8 } else { 4 }, u16::from(bytes), 0, offset),
            FetchOp::Store { dest } => (5, 8, dest, 0),
            FetchOp::String { dest, max, user } => (if user { 7 } else { 6 }, max, dest, 0),
            FetchOp::Stack { dest, frames } => (9, frames * 8, dest, 0),
            FetchOp::CurrentTask => (10, 0, 0, 0),
            FetchOp::Const(value) => (11, 0, 0, value),
            FetchOp::Push => (12, 0, 0, 0),
            FetchOp::Pop { minus } => (if minus { 14 } else { 13 }, 0, 0, 0),
            FetchOp::UserLoad { bytes } => (15, u16::from(bytes), 0, 0),
        }
    }
}

/// The reads one probe site makes at each event, and how many payload bytes they fill.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchProgram {
    pub ops: Vec<FetchOp>,
    pub payload_bytes: u16,
}

impl FetchProgram {
    /// The program as `struct rstap_fetch_program` lays it out.
    pub fn encode(&self) -> [u8; PROGRAM_BYTES] {
        let mut bytes = [0u8; PROGRAM_BYTES];
        let count = self.ops.len().min(MAX_OPS) as u32;
        bytes[0..4].copy_from_slice(&count.to_ne_bytes());
        bytes[4..8].copy_from_slice(&u32::from(self.payload_bytes).to_ne_bytes());
        for (index, op) in self.ops.iter().take(MAX_OPS).enumerate() {
            let (code, size, dest, operand) = op.fields();
            let at = 8 + index * OP_BYTES;
            bytes[at] = code;
            bytes[at + 2..at + 4].copy_from_slice(&size.to_ne_bytes());
            bytes[at + 4..at + 6].copy_from_slice(&dest.to_ne_bytes());
            bytes[at + 8..at + 16].copy_from_slice(&operand.to_ne_bytes());
        }
        bytes
    }
}

/// The fetch program of one function's entry or return, or of a tracepoint: `struct
/// fetch_key` and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteFetch {
    /// The function's entry address, or the tracepoint's number (its index in the plan).
    pub site: u64,
    pub kind: super::EventKind,
    pub program: FetchProgram,
}

impl SiteFetch {
    /// `struct fetch_key`.
    pub fn key(&self) -> [u8; 16] {
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&self.site.to_ne_bytes());
        let kind = self.kind.code();
        key[8..12].copy_from_slice(&kind.to_ne_bytes());
        key
    }
}

/// Bytes of one nesting level's scratch record: `struct event_scratch`.
pub const SCRATCH_BYTES: usize = super::event::HEADER_BYTES + MAX_PAYLOAD + MAX_STRING;

/// Where a value is in the payload and how to read it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadValue {
    /// An integer of `bytes` bytes (sign-extended when `signed`), or a bitfield of `bits`
    /// bits starting `shift` bits into it.
    Int {
        value: usize,
        offset: usize,
        bytes: u8,
        signed: bool,
        shift: u8,
        bits: u8,
    },
    /// A string copied by a `String` operation; `function` names the read for its fault.
    Str {
        value: usize,
        offset: usize,
        function: &'static str,
    },
    /// A backtrace: a count of frames, then the frames.
    Stack { value: usize, offset: usize },
    /// An 8-byte value loaded through the target's address by `kernel_long()` and the
    /// like (`function` names it), sign- or zero-extended from `bytes`.
    Deref {
        value: usize,
        offset: usize,
        bytes: u8,
        signed: bool,
        function: &'static str,
    },
}

/// A value that could not be read at the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadFault {
    /// A load on the way faulted at this address.
    Memory(u64),
    /// The final copy of `kernel_string()` and friends faulted at this address.
    Copy {
        function: &'static str,
        address: u64,
    },
    /// The payload is shorter than the layout says: never expected.
    Truncated,
}

/// A value read back from a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<'a> {
    Int(i64),
    Str(&'a [u8]),
    /// Return addresses, innermost first, as native-endian 8-byte words.
    Frames(&'a [u8]),
}

impl PayloadValue {
    /// Reads the value back from `payload`.
    pub fn decode(self, payload: &[u8]) -> Result<Decoded<'_>, PayloadFault> {
        let word = |at: usize| -> Result<u64, PayloadFault> {
            payload
                .get(at..at + 8)
                .and_then(|bytes| bytes.try_into().ok())
                .map(u64::from_ne_bytes)
                .ok_or(PayloadFault::Truncated)
        };
        let (value, offset) = match self {
            PayloadValue::Int { value, offset, .. }
            | PayloadValue::Str { value, offset, .. }
            | PayloadValue::Stack { value, offset }
            | PayloadValue::Deref { value, offset, .. } => (value, offset),
        };
        let bit = 1u64 << value;
        if word(0)? & bit != 0 {
            let address = word(offset)?;
            return Err(match self {
                PayloadValue::Str { function, .. } | PayloadValue::Deref { function, .. }
                    if word(8)? & bit != 0 =>
                {
                    PayloadFault::Copy { function, address }
                }
                _ => PayloadFault::Memory(address),
            });
        }
        match self {
            PayloadValue::Int {
                bytes,
                signed,
                shift,
                bits,
                ..
            } => {
                let raw = word(offset)?;
                let width = if bits > 0 {
                    u32::from(bits)
                } else {
                    u32::from(bytes) * 8
                };
                Ok(Decoded::Int(extend(raw >> shift, width, signed)))
            }
            PayloadValue::Deref { bytes, signed, .. } => Ok(Decoded::Int(extend(
                word(offset)?,
                u32::from(bytes) * 8,
                signed,
            ))),
            PayloadValue::Stack { .. } => {
                let frames = (word(offset)? as usize).min(MAX_FRAMES);
                let bytes = payload
                    .get(offset + 8..offset + 8 + frames * 8)
                    .ok_or(PayloadFault::Truncated)?;
                Ok(Decoded::Frames(bytes))
            }
            PayloadValue::Str { .. } => {
                let text = payload.get(offset..).ok_or(PayloadFault::Truncated)?;
                let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
                Ok(Decoded::Str(&text[..end]))
            }
        }
    }
}

/// The low `width` bits of `raw`, sign-extended when `signed`.
pub(crate) fn extend(raw: u64, width: u32, signed: bool) -> i64 {
    if width >= 64 {
        return raw as i64;
    }
    let kept = raw & ((1u64 << width) - 1);
    if signed && kept >> (width - 1) & 1 == 1 {
        (kept | !((1u64 << width) - 1)) as i64
    } else {
        kept as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fetch programs' side of the ABI; event.bpf.h has the rest.
    const C_SIDE: &str = concat!(include_str!("fetch.bpf.h"), include_str!("event.bpf.h"));

    /// The value of `NAME = VALUE,` or `#define NAME VALUE` in the C headers.
    fn c_constant(name: &str) -> i64 {
        C_SIDE
            .lines()
            .find_map(|line| {
                let line = line.trim();
                let rest = line
                    .strip_prefix("#define ")
                    .and_then(|rest| rest.strip_prefix(name))
                    .filter(|rest| rest.starts_with(' '))
                    .or_else(|| {
                        line.strip_prefix(name)
                            .and_then(|rest| rest.trim_start().strip_prefix('='))
                    })?;
                rest.split_whitespace()
                    .next()?
                    .trim_end_matches(',')
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("{name} is not in fetch.bpf.h or event.bpf.h"))
    }

    #[test]
    fn limits_and_codes_match_the_c_side() {
        assert_eq!(c_constant("FETCH_MAX_OPS"), MAX_OPS as i64);
        assert_eq!(c_constant("FETCH_SAVED_MAX"), MAX_SAVED as i64);
        assert_eq!(c_constant("PAYLOAD_MAX"), MAX_PAYLOAD as i64);
        assert_eq!(c_constant("STRING_MAX"), MAX_STRING as i64);
        assert_eq!(c_constant("STACK_MAX"), MAX_FRAMES as i64 * 8);
        let load = |copy| FetchOp::Load {
            offset: 0,
            bytes: 8,
            copy,
        };
        let string = |user| FetchOp::String {
            dest: 0,
            max: 1,
            user,
        };
        for (name, op) in [
            ("FETCH_ARG", FetchOp::Argument(0)),
            ("FETCH_RETURN", FetchOp::ReturnValue),
            ("FETCH_ADD", FetchOp::Add(0)),
            ("FETCH_LOAD", load(false)),
            ("FETCH_COPY_LOAD", load(true)),
            ("FETCH_STORE", FetchOp::Store { dest: 0 }),
            ("FETCH_STRING", string(false)),
            ("FETCH_USER_STRING", string(true)),
            ("FETCH_STACK", FetchOp::Stack { dest: 0, frames: 1 }),
            ("FETCH_CURRENT_TASK", FetchOp::CurrentTask),
            ("FETCH_CONST", FetchOp::Const(0)),
            ("FETCH_PUSH", FetchOp::Push),
            ("FETCH_POP_ADD", FetchOp::Pop { minus: false }),
            ("FETCH_POP_SUB", FetchOp::Pop { minus: true }),
        ] {
            assert_eq!(c_constant(name), i64::from(op.fields().0), "{name}");
        }
    }

    #[test]
    fn programs_encode_as_struct_rstap_fetch_program() {
        let program = FetchProgram {
            ops: vec![
                FetchOp::Argument(2),
                FetchOp::Load {
                    offset: -16,
                    bytes: 4,
                    copy: false,
                },
                FetchOp::String {
                    dest: 24,
                    max: 200,
                    user: true,
                },
            ],
            payload_bytes: 224,
        };
        let bytes = program.encode();
        assert_eq!(bytes.len(), PROGRAM_BYTES);
        assert_eq!(u32::from_ne_bytes(bytes[0..4].try_into().unwrap()), 3);
        assert_eq!(u32::from_ne_bytes(bytes[4..8].try_into().unwrap()), 224);
        // struct rstap_fetch_op: code, unused, size, dest, unused2, operand.
        let op = |i: usize| &bytes[8 + i * 16..8 + (i + 1) * 16];
        assert_eq!(op(0)[0], 1);
        assert_eq!(i64::from_ne_bytes(op(0)[8..16].try_into().unwrap()), 2);
        assert_eq!(op(1)[0], 4);
        assert_eq!(u16::from_ne_bytes(op(1)[2..4].try_into().unwrap()), 4);
        assert_eq!(i64::from_ne_bytes(op(1)[8..16].try_into().unwrap()), -16);
        assert_eq!(op(2)[0], 7);
        assert_eq!(u16::from_ne_bytes(op(2)[2..4].try_into().unwrap()), 200);
        assert_eq!(u16::from_ne_bytes(op(2)[4..6].try_into().unwrap()), 24);
        assert!(
            op(3).iter().all(|&b| b == 0),
            "unused operations are FETCH_END"
        );
    }

    /// A payload: the two fault masks, then the given words.
    fn payload(faulted: u64, copy_faulted: u64, words: &[u64]) -> Vec<u8> {
        [faulted, copy_faulted]
            .iter()
            .chain(words)
            .flat_map(|word| word.to_ne_bytes())
            .collect()
    }

    fn int(value: usize, offset: usize, bytes: u8, signed: bool) -> PayloadValue {
        PayloadValue::Int {
            value,
            offset,
            bytes,
            signed,
            shift: 0,
            bits: 0,
        }
    }

    #[test]
    fn integers_are_cut_to_their_width_and_sign_extended() {
        let data = payload(0, 0, &[0xffff_ffff_ffff_fffe, 0x1_0000_00ff]);
        assert_eq!(int(0, 16, 4, true).decode(&data), Ok(Decoded::Int(-2)));
        assert_eq!(
            int(0, 16, 4, false).decode(&data),
            Ok(Decoded::Int(0xffff_fffe))
        );
        assert_eq!(int(1, 24, 1, true).decode(&data), Ok(Decoded::Int(-1)));
        assert_eq!(int(1, 24, 2, false).decode(&data), Ok(Decoded::Int(0xff)));
        assert_eq!(
            int(1, 24, 8, false).decode(&data),
            Ok(Decoded::Int(0x1_0000_00ff))
        );
    }

    #[test]
    fn bitfields_are_shifted_and_masked() {
        // Bits 3..6 of 0b0110_1000 hold 0b101.
        let data = payload(0, 0, &[0b0110_1000]);
        let field = |signed| PayloadValue::Int {
            value: 0,
            offset: 16,
            bytes: 1,
            signed,
            shift: 3,
            bits: 3,
        };
        assert_eq!(field(false).decode(&data), Ok(Decoded::Int(5)));
        assert_eq!(field(true).decode(&data), Ok(Decoded::Int(-3)));
    }

    #[test]
    fn loaded_numbers_extend_as_their_read_says() {
        let data = payload(0, 0, &[0xfffe]);
        let short = |signed| PayloadValue::Deref {
            value: 0,
            offset: 16,
            bytes: 2,
            signed,
            function: "user short",
        };
        assert_eq!(short(true).decode(&data), Ok(Decoded::Int(-2)));
        assert_eq!(short(false).decode(&data), Ok(Decoded::Int(0xfffe)));
    }

    #[test]
    fn strings_end_at_their_nul() {
        let mut data = payload(0, 0, &[]);
        data.extend_from_slice(b"tcp\0garbage");
        let text = PayloadValue::Str {
            value: 0,
            offset: 16,
            function: "kernel string",
        };
        assert_eq!(text.decode(&data), Ok(Decoded::Str(b"tcp")));
    }

    #[test]
    fn faults_say_where_and_which_kind() {
        let data = payload(0b110, 0b100, &[7, 0xdead, 0xbeef]);
        assert_eq!(int(0, 16, 8, false).decode(&data), Ok(Decoded::Int(7)));
        let deref = |value, offset| PayloadValue::Deref {
            value,
            offset,
            bytes: 8,
            signed: true,
            function: "kernel long",
        };
        assert_eq!(
            deref(1, 24).decode(&data),
            Err(PayloadFault::Memory(0xdead))
        );
        assert_eq!(
            deref(2, 32).decode(&data),
            Err(PayloadFault::Copy {
                function: "kernel long",
                address: 0xbeef
            })
        );
        assert_eq!(
            int(0, 40, 8, false).decode(&data),
            Err(PayloadFault::Truncated)
        );
    }
}
