// SPDX-License-Identifier: GPL-2.0
/*
 * Tracepoint probes. User space loads these two programs once, as templates, and then a
 * copy of one of them per tracepoint with the tracepoint's number written into the copy
 * (see tracepoint.rs): neither kind of program is told which tracepoint it runs for
 * (attach cookies reach raw tracepoints only from Linux 6.10).
 */
#include "event.bpf.h"

/* The 64-bit immediate each copy replaces with its tracepoint's number. */
#define TRACEPOINT_NUMBER_PLACEHOLDER 0x7273746170545021ULL

static __always_inline __u64 tracepoint_number(void)
{
	__u64 number;

	/* One ld_imm64 instruction carrying the placeholder, which the compiler cannot fold. */
	asm volatile("%0 = %1 ll" : "=r"(number) : "i"(TRACEPOINT_NUMBER_PLACEHOLDER));
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
	return emit_event(ctx, EVENT_TRACEPOINT, tracepoint_number(), 0, 0, 0, args);
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
	return emit_event(ctx, EVENT_TRACEPOINT, tracepoint_number(), 0, 0, 0, args);
}
