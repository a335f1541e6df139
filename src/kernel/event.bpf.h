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

static __always_inline int write_event(struct cpu_state *state, enum event_kind kind,
				       __u64 function_address, __u64 return_address,
				       __u64 outer_return_address, __u64 return_value)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct event *e;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__sync_fetch_and_add(&state->lost_events, 1);
		return 0;
	}
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
	bpf_ringbuf_submit(e, bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes ?
				      BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
	return 0;
}

static __always_inline int emit_event(enum event_kind kind, __u64 function_address,
				      __u64 return_address, __u64 outer_return_address,
				      __u64 return_value)
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
	write_event(state, kind, function_address, return_address, outer_return_address,
		    return_value);
	state->depth -= 1;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";

#endif
