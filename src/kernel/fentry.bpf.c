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
	__u64 args[FETCH_ARGS] = {};

	if (fetch_enabled) {
		/* Arguments past the function's own count are refused and stay 0. */
		for (__u32 i = 0; i < FETCH_ARGS; i++)
			bpf_get_func_arg(ctx, i, &args[i]);
	}
	return emit_event(ctx, EVENT_ENTRY, bpf_get_func_ip(ctx), 0, 0, 0, args);
}

/*
 * The x86-64 BPF trampoline lays out its frame as: the traced function's arguments
 * (ctx[0..n], n = bpf_get_func_arg_cnt()), its return value (ctx[n]), the trampoline's
 * saved frame pointer (ctx[n + 1]), the return address into the traced function's patched
 * entry (ctx[n + 2]) and, above it, the return address into the traced function's caller
 * (ctx[n + 3]). That last one is what SystemTap's addr() gives in a .return probe.
 *
 * When the caller tail-called the function from inside its own fexit trampoline, that
 * address lies in the caller's trampoline; the saved frame pointer is then the caller's
 * trampoline frame, whose return address (16 bytes above it) is the real one. Both are
 * reported, and user space, which knows where kernel text lies, picks.
 *
 * The verifier forbids variable offsets into ctx, so the frame is read as plain memory.
 */
struct return_addresses {
	__u64 direct;
	__u64 outer;
};

static __always_inline struct return_addresses caller_return_addresses(__u64 *ctx)
{
	struct return_addresses found = {};
	__u64 frame, saved_frame_pointer = 0;
	__u64 *ctx_copy = ctx;

	bpf_probe_read_kernel(&frame, sizeof(frame), &ctx_copy);
	frame += (bpf_get_func_arg_cnt(ctx) + 1) * sizeof(__u64);
	bpf_probe_read_kernel(&saved_frame_pointer, sizeof(saved_frame_pointer), (void *)frame);
	bpf_probe_read_kernel(&found.direct, sizeof(found.direct), (void *)(frame + 16));
	if (saved_frame_pointer)
		bpf_probe_read_kernel(&found.outer, sizeof(found.outer),
				      (void *)(saved_frame_pointer + 16));
	return found;
}

SEC("fexit/placeholder")
int on_return(__u64 *ctx)
{
	struct return_addresses caller = caller_return_addresses(ctx);
	__u64 args[FETCH_ARGS] = {};
	__u64 return_value = 0;

	bpf_get_func_ret(ctx, &return_value);
	return emit_event(ctx, EVENT_RETURN, bpf_get_func_ip(ctx), caller.direct, caller.outer,
			  return_value, args);
}
