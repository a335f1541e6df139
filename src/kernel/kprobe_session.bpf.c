// SPDX-License-Identifier: GPL-2.0
/*
 * kprobe.session probes: one program and one link serve both the entry and the return of
 * every target function; the kernel runs the program at entry and, unless it returned
 * non-zero there, again at return. The attach cookie of each function is its entry
 * address.
 */
#include "event.bpf.h"
#include <bpf/bpf_tracing.h>

/* Linux 6.10+; loading fails on kernels without it, which is how rstap finds out. */
extern bool bpf_session_is_return(void) __ksym;

enum wanted_side {
	WANT_ENTRY = 1,
	WANT_RETURN = 2,
};

/* Function entry address -> enum wanted_side bits, filled by user space before attach. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1); /* resized by user space before load */
	__type(key, __u64);
	__type(value, __u32);
} wanted_sides SEC(".maps");

SEC("kprobe.session")
int on_call(struct pt_regs *ctx)
{
	__u64 function_address = bpf_get_attach_cookie(ctx);
	__u32 *wanted = bpf_map_lookup_elem(&wanted_sides, &function_address);
	__u64 args[FETCH_ARGS] = {};

	if (!wanted)
		return 1;
	/* As with kretprobe.multi, the return hook puts the return address into regs->ip. */
	if (bpf_session_is_return()) {
		emit_event(ctx, EVENT_RETURN, function_address, PT_REGS_IP(ctx), 0, PT_REGS_RC(ctx),
			   args);
		return 0;
	}
	if (*wanted & WANT_ENTRY) {
		FILL_REGS_ARGS(args, ctx);
		emit_event(ctx, EVENT_ENTRY, function_address, 0, 0, 0, args);
	}
	/* Non-zero skips this call's return. */
	return !(*wanted & WANT_RETURN);
}
