// SPDX-License-Identifier: GPL-2.0
/*
 * fentry/fexit probes. User space loads these two programs once, attached to the first
 * target function, then loads a copy of their instructions for every other target: the
 * programs never name their function, they ask the trampoline for it.
 */
#include "event.bpf.h"
#include <bpf/bpf_tracing.h>

SEC("fentry/placeholder")
int on_entry(__u64 *ctx)
{
	return emit_event(EVENT_ENTRY, bpf_get_func_ip(ctx), 0, 0);
}

/*
 * The x86-64 BPF trampoline lays out its frame as: the traced function's arguments
 * (ctx[0..n], n = bpf_get_func_arg_cnt()), its return value (ctx[n]), the trampoline's
 * saved frame pointer (ctx[n + 1]), the return address into the traced function's patched
 * entry (ctx[n + 2]) and, above it, the return address into the traced function's caller
 * (ctx[n + 3]). That last one is what SystemTap's addr() gives in a .return probe.
 * The verifier forbids variable offsets into ctx, so the address is read as plain memory.
 */
static __always_inline __u64 caller_return_address(__u64 *ctx)
{
	__u64 frame, return_address = 0;
	__u64 *ctx_copy = ctx;

	bpf_probe_read_kernel(&frame, sizeof(frame), &ctx_copy);
	frame += (bpf_get_func_arg_cnt(ctx) + 3) * sizeof(__u64);
	bpf_probe_read_kernel(&return_address, sizeof(return_address), (void *)frame);
	return return_address;
}

SEC("fexit/placeholder")
int on_return(__u64 *ctx)
{
	__u64 return_value = 0;

	bpf_get_func_ret(ctx, &return_value);
	return emit_event(EVENT_RETURN, bpf_get_func_ip(ctx), caller_return_address(ctx),
			  return_value);
}
