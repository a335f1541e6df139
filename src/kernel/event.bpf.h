/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What every rstap probe program shares: the event record, the one ring buffer all
 * programs write to, the process filter, the per-CPU recursion guard, and the counts of
 * events the ring buffer had no room for or the guard turned away. Each attach
 * mechanism's program only says where the function address, return address and return
 * value come from.
 */
#ifndef RSTAP_EVENT_BPF_H
#define RSTAP_EVENT_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define TASK_COMM_LEN 16

enum event_kind {
	EVENT_ENTRY = 0,
	EVENT_RETURN = 1,
	EVENT_TRACEPOINT = 2,	/* function_address is the tracepoint's number */
	EVENT_SAMPLE = 3,	/* function_address is the sample's number, return_address the
				 * interrupted instruction */
};

/* Mirrored by `RawEvent` in src/kernel/event.rs; keep the two in step. */
struct event {
	__u64 timestamp_ns;	/* CLOCK_MONOTONIC, bpf_ktime_get_ns() */
	__u64 function_address;	/* entry address of the probed function */
	__u64 return_address;	/* .return only: where the function returns to */
	__u64 return_value;	/* .return only */
	/*
	 * .return only, fentry only: where the return address's own frame returns to. When
	 * the function was tail-called by a function that is itself traced with fexit, its
	 * return address lies in that function's trampoline, and this is the real caller.
	 */
	__u64 outer_return_address;
	__u32 tgid;
	__u32 tid;
	__u32 cpu;
	__u32 kind;		/* enum event_kind */
	char comm[TASK_COMM_LEN];
};
_Static_assert(sizeof(struct event) == 72, "struct event must match RawEvent");

#include "fetch.bpf.h"

struct fetch_key {
	__u64 function_address;
	__u32 kind;		/* enum event_kind */
	__u32 unused;
};
_Static_assert(sizeof(struct fetch_key) == 16, "struct fetch_key must match SiteFetch::key");

/* Created by user space (sized to the sites that read data) and shared by every object. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, struct fetch_key);
	__type(value, struct rstap_fetch_program);
} fetch_programs SEC(".maps");

/*
 * An event with a payload is built here, then copied into the ring buffer: a ring buffer
 * reservation must have a size the verifier knows, a payload's is the site's. One record
 * per nesting level, so that an interrupt's event does not overwrite the one it interrupted.
 * The slack past PAYLOAD_MAX lets a string copy start anywhere in the payload.
 */
struct event_scratch {
	__u8 bytes[72 + PAYLOAD_MAX + STRING_MAX];
};
_Static_assert(8 + STACK_MAX <= STRING_MAX, "a stack fits the scratch record's slack");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4); /* MAX_CONTEXT_NESTING */
	__type(key, __u32);
	__type(value, struct event_scratch);
} event_scratch SEC(".maps");

/* Set by user space before load: 0 traces every process. */
const volatile __u32 target_tgid = 0;
/* rstap's own process: tracing it would feed back into the trace. */
const volatile __u32 rstap_tgid = 0;
/*
 * Bytes pending in the ring buffer from which a record wakes the reader. Waking it costs
 * the traced CPU an interrupt (irq_work) and a cross-CPU wakeup, per record when the reader
 * keeps up, and an interrupt inside this program is one in which the kernel skips every
 * other kprobe-type program on the CPU. Below this the records wait for the reader's next
 * timed poll. Set by user space to a share of the buffer.
 */
const volatile __u64 wakeup_bytes = 0;
/* Whether any site reads the kernel's data: if not, the fetch path is left out at load. */
const volatile __u32 fetch_enabled = 0;

/*
 * The ring buffer and cpu_state are created by user space and shared by every object
 * rstap loads.
 */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

/*
 * How deeply rstap's programs are nested on this CPU. A CPU nests at most four contexts
 * (task, softirq, hard interrupt, NMI), and a call traced in an interrupt that arrives
 * while a program runs is a real event, to be reported; deeper nesting can only be a
 * program re-entering itself through a traced function, and is turned away.
 */
#define MAX_CONTEXT_NESTING 4

/*
 * Per CPU, so no update shares a cache line with another CPU's. The depth needs no atomic:
 * a nested program restores it before the interrupted one resumes. The counts are added
 * atomically all the same, so that a nested program's addition is never overwritten.
 * Mirrored by `CpuState` in src/kernel/mod.rs, which sums the counts at exit.
 */
struct cpu_state {
	__u32 depth;
	__u32 unused;
	__u64 lost_events;	/* the ring buffer was full */
	__u64 recursion_drops;	/* turned away for nesting too deeply */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cpu_state);
} cpu_state SEC(".maps");

static __always_inline void fill_header(struct event *e, enum event_kind kind,
				       __u64 function_address, __u64 return_address,
				       __u64 outer_return_address, __u64 return_value)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	e->timestamp_ns = bpf_ktime_get_ns();
	e->function_address = function_address;
	e->return_address = return_address;
	e->return_value = return_value;
	e->outer_return_address = outer_return_address;
	e->tgid = pid_tgid >> 32;
	e->tid = (__u32)pid_tgid;
	e->cpu = bpf_get_smp_processor_id();
	e->kind = kind;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
}

static __always_inline __u64 wakeup_flags(void)
{
	return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes ?
		       BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

/* An event with the payload `program` reads, through this nesting level's scratch record. */
static __always_inline int write_event_with_payload(void *ctx, struct cpu_state *state,
						    const struct rstap_fetch_program *program,
						    enum event_kind kind, __u64 function_address,
						    __u64 return_address,
						    __u64 outer_return_address,
						    __u64 return_value, const __u64 *args)
{
	__u32 level = state->depth - 1;
	struct event_scratch *scratch;
	__u32 payload_bytes;

	scratch = bpf_map_lookup_elem(&event_scratch, &level);
	if (!scratch)
		return 0;
	__builtin_memset(scratch->bytes + sizeof(struct event), 0, sizeof(struct payload_faults));
	fill_header((struct event *)scratch->bytes, kind, function_address, return_address,
		    outer_return_address, return_value);
	struct fetch_state fetch = {
		.ctx = ctx,
		.program = program,
		.payload = scratch->bytes + sizeof(struct event),
		.args = args,
		.return_value = return_value,
		.saved_count = fetch_opaque_zero,
		.value = fetch_opaque_zero,
		.fault = fetch_opaque_zero,
	};
	bpf_loop(program->op_count > FETCH_MAX_OPS ? FETCH_MAX_OPS : program->op_count,
		 fetch_step, &fetch, 0);
	payload_bytes = program->payload_bytes;
	if (payload_bytes > PAYLOAD_MAX)
		payload_bytes = PAYLOAD_MAX;
	if (bpf_ringbuf_output(&events, scratch->bytes, sizeof(struct event) + payload_bytes,
			       wakeup_flags()))
		__sync_fetch_and_add(&state->lost_events, 1);
	return 0;
}

static __always_inline int write_event(void *ctx, struct cpu_state *state, enum event_kind kind,
				       __u64 function_address, __u64 return_address,
				       __u64 outer_return_address, __u64 return_value,
				       const __u64 *args)
{
	struct event *e;

	if (fetch_enabled) {
		struct fetch_key key = { .function_address = function_address, .kind = kind };
		const struct rstap_fetch_program *program = bpf_map_lookup_elem(&fetch_programs, &key);

		if (program)
			return write_event_with_payload(ctx, state, program, kind, function_address,
							return_address, outer_return_address,
							return_value, args);
	}
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__sync_fetch_and_add(&state->lost_events, 1);
		return 0;
	}
	fill_header(e, kind, function_address, return_address, outer_return_address,
		    return_value);
	bpf_ringbuf_submit(e, wakeup_flags());
	return 0;
}

/*
 * `args` holds the function's first FETCH_ARGS arguments at entry (the caller fills them
 * only when fetch_enabled); fetch programs read them.
 */
static __always_inline int emit_event(void *ctx, enum event_kind kind, __u64 function_address,
				      __u64 return_address, __u64 outer_return_address,
				      __u64 return_value, const __u64 *args)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u32 zero = 0;
	struct cpu_state *state;

	if (tgid == rstap_tgid || (target_tgid && tgid != target_tgid))
		return 0;
	state = bpf_map_lookup_elem(&cpu_state, &zero);
	if (!state)
		return 0;
	if (state->depth >= MAX_CONTEXT_NESTING) {
		__sync_fetch_and_add(&state->recursion_drops, 1);
		return 0;
	}
	state->depth += 1;
	write_event(ctx, state, kind, function_address, return_address, outer_return_address,
		    return_value, args);
	state->depth -= 1;
	return 0;
}

/* The arguments of a function probed through pt_regs (kprobes of every kind), at entry. */
#define FILL_REGS_ARGS(args, ctx)                                                          \
	do {                                                                               \
		if (fetch_enabled) {                                                       \
			(args)[0] = PT_REGS_PARM1(ctx);                                    \
			(args)[1] = PT_REGS_PARM2(ctx);                                    \
			(args)[2] = PT_REGS_PARM3(ctx);                                    \
			(args)[3] = PT_REGS_PARM4(ctx);                                    \
			(args)[4] = PT_REGS_PARM5(ctx);                                    \
			(args)[5] = PT_REGS_PARM6(ctx);                                    \
		}                                                                          \
	} while (0)

char LICENSE[] SEC("license") = "GPL";

#endif
