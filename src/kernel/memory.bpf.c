// SPDX-License-Identifier: GPL-2.0
/*
 * Reads of kernel memory that a script makes after its event: `@cast(p, "task_struct")->pid`
 * of a pointer kept in an array, `kernel_string(addr)` of an address the script computed.
 * User space writes a fetch program (its first operation loads the address) into
 * `late_read`, runs this program with BPF_PROG_TEST_RUN, and reads the payload back; both
 * lie in the object's .bss, which user space maps. Never attached.
 */
#include "fetch.bpf.h"

struct late_read {
	struct rstap_fetch_program program;
	/* Faults first, as in an event's payload; the slack lets a string start anywhere. */
	__u8 payload[PAYLOAD_MAX + STRING_MAX];
};

struct late_read late_read;

SEC("raw_tp")
int read_memory(void *ctx)
{
	__u64 args[FETCH_ARGS] = {};
	struct fetch_state fetch = {
		.ctx = ctx,
		.program = &late_read.program,
		.payload = late_read.payload,
		.args = args,
		.saved_count = fetch_opaque_zero,
		.value = fetch_opaque_zero,
		.fault = fetch_opaque_zero,
	};

	__builtin_memset(late_read.payload, 0, sizeof(struct payload_faults));
	bpf_loop(late_read.program.op_count > FETCH_MAX_OPS ? FETCH_MAX_OPS :
							     late_read.program.op_count,
		 fetch_step, &fetch, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
