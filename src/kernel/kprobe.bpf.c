// SPDX-License-Identifier: GPL-2.0
/*
 * kprobe/kretprobe probes, for kernels or functions where fentry/fexit is refused. One
 * program of each kind serves every function; the attach cookie carries the function's
 * entry address.
 */
#include "event.bpf.h"
#include <bpf/bpf_tracing.h>

SEC("kprobe")
int on_entry(struct pt_regs *ctx)
{
	__u64 args[FETCH_ARGS] = {};

	FILL_REGS_ARGS(args, ctx);
	return emit_event(ctx, EVENT_ENTRY, bpf_get_attach_cookie(ctx), 0, 0, 0, args);
}

/* The kretprobe trampoline restores the real return address into regs->ip. */
SEC("kretprobe")
int on_return(struct pt_regs *ctx)
{
	__u64 args[FETCH_ARGS] = {};

	return emit_event(ctx, EVENT_RETURN, bpf_get_attach_cookie(ctx), PT_REGS_IP(ctx), 0,
			  PT_REGS_RC(ctx), args);
}
