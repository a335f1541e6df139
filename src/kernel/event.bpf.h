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

/* Events dropped because the ring buffer was full; reported at exit. */
__u64 lost_events = 0;
/* Events dropped because rstap's programs were nested too deeply on this CPU. */
__u64 recursion_drops = 0;

/* Both maps are created by user space and shared by every object rstap loads. */
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

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} probe_depth SEC(".maps");

static __always_inline int write_event(enum event_kind kind, __u64 function_address,
				      __u64 return_address, __u64 outer_return_address,
				      __u64 return_value)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct event *e;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__sync_fetch_and_add(&lost_events, 1);
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
	bpf_ringbuf_submit(e, 0);
	return 0;
}

static __always_inline int emit_event(enum event_kind kind, __u64 function_address,
				      __u64 return_address, __u64 outer_return_address,
				      __u64 return_value)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u32 zero = 0;
	__u32 *depth;

	if (tgid == rstap_tgid || (target_tgid && tgid != target_tgid))
		return 0;
	depth = bpf_map_lookup_elem(&probe_depth, &zero);
	if (!depth)
		return 0;
	if (*depth >= MAX_CONTEXT_NESTING) {
		__sync_fetch_and_add(&recursion_drops, 1);
		return 0;
	}
	/*
	 * Per CPU, so no atomics: an interrupt between the load and the store of either
	 * update leaves the depth as it found it.
	 */
	*depth += 1;
	write_event(kind, function_address, return_address, outer_return_address, return_value);
	*depth -= 1;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";

#endif
