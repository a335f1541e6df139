// SPDX-License-Identifier: GPL-2.0
/*
 * kprobe.multi/kretprobe.multi probes: one link places the entry program on every target
 * function at once (the kernel's fprobe, one ftrace filter update), another the return
 * program. The attach cookie of each function is its entry address.
 */
#include "event.bpf.h"
#include <bpf/bpf_tracing.h>

SEC("kprobe.multi")
int on_entry(struct pt_regs *ctx)
{
	__u64 args[FETCH_ARGS] = {};

	FILL_REGS_ARGS(args, ctx);
	return emit_event(ctx, EVENT_ENTRY, bpf_get_attach_cookie(ctx), 0, 0, 0, args);
}

/* fprobe's return hook (rethook) puts the real return address into regs->ip. */
SEC("kretprobe.multi")
int on_return(struct pt_regs *ctx)
{
	__u64 args[FETCH_ARGS] = {};

	return emit_event(ctx, EVENT_RETURN, bpf_get_attach_cookie(ctx), PT_REGS_IP(ctx), 0,
			  PT_REGS_RC(ctx), args);
}
