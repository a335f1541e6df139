// SPDX-License-Identifier: GPL-2.0
/*
 * Probes on numbered sites: tracepoints and sampled perf events. User space loads these
 * programs once, as templates, and then a copy per site with the site's number written
 * into the copy (see sites.rs): none of these programs is told which site it runs for on
 * every kernel (attach cookies reach raw tracepoints only from Linux 6.10).
 */
#include "event.bpf.h"
#include <bpf/bpf_tracing.h>

/* The 64-bit immediate each copy replaces with its site's number. */
#define SITE_NUMBER_PLACEHOLDER 0x7273746170545021ULL

static __always_inline __u64 site_number(void)
{
	__u64 number;

	/* One ld_imm64 instruction carrying the placeholder, which the compiler cannot fold. */
	asm volatile("%0 = %1 ll" : "=r"(number) : "i"(SITE_NUMBER_PLACEHOLDER));
	return number;
}

/* The address `pointer` holds, as a number: the verifier lets a number be read through. */
static __always_inline __u64 address_of(void *pointer)
{
	__u64 address = 0;

	bpf_probe_read_kernel(&address, sizeof(address), &pointer);
	return address;
}

/*
 * A raw tracepoint: ctx holds the tracepoint's arguments. They are read as memory, since
 * a direct read past the tracepoint's own argument count makes the kernel refuse to
 * attach the program; words past it are whatever the stack holds, and no name refers to
 * them.
 */
SEC("raw_tp")
int on_raw_tracepoint(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 args[FETCH_ARGS] = {};

	if (fetch_enabled)
		bpf_probe_read_kernel(args, sizeof(args), (void *)address_of(ctx->args));
	return emit_event(ctx, EVENT_TRACEPOINT, site_number(), 0, 0, 0, args);
}

/*
 * A tracepoint known only by its trace record (the syscall events ftrace makes): ctx is
 * the record, and its address is the one argument the fetch program gets; the fields lie
 * at the offsets tracefs gives.
 */
SEC("tracepoint")
int on_trace_record(void *ctx)
{
	__u64 args[FETCH_ARGS] = {};

	if (fetch_enabled)
		args[0] = address_of(ctx);
	return emit_event(ctx, EVENT_TRACEPOINT, site_number(), 0, 0, 0, args);
}

/* A sampled perf event: where the task was interrupted goes where a return address would. */
SEC("perf_event")
int on_sample(struct bpf_perf_event_data *ctx)
{
	__u64 args[FETCH_ARGS] = {};

	return emit_event(ctx, EVENT_SAMPLE, site_number(), PT_REGS_IP(&ctx->regs), 0, 0, args);
}
