/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The fetch programs' interpreter, shared by the probe programs (event.bpf.h), which run
 * a site's program at each event, and by memory.bpf.c, which runs one on demand for the
 * reads a script makes after the event. No maps: each object brings its own.
 */
#ifndef RSTAP_FETCH_BPF_H
#define RSTAP_FETCH_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

/*
 * Fetch programs: what a probe site reads of the kernel's data at each event, as data
 * (see src/kernel/fetch.rs, which encodes them; the two are one ABI). One register; each
 * payload value is made by operations that end in a store; a load that faults stops the
 * value, whose store then writes the faulting address and sets the value's fault bit.
 */
#define FETCH_MAX_OPS 128
#define PAYLOAD_MAX 1024
#define STRING_MAX 256
#define STACK_MAX 240		/* bytes of return addresses: 30 frames */
#define FETCH_ARGS 6
/* Values FETCH_PUSH keeps for the sums of `@cast(A + B, ...)`, a power of two. */
#define FETCH_SAVED_MAX 4

enum rstap_fetch_code {
	FETCH_END = 0,
	FETCH_ARG = 1,		/* reg = argument[operand] */
	FETCH_RETURN = 2,	/* reg = the return value */
	FETCH_ADD = 3,		/* reg += operand */
	FETCH_LOAD = 4,		/* reg = size bytes at reg + operand */
	FETCH_STORE = 5,	/* payload[dest] = reg */
	FETCH_STRING = 6,	/* payload[dest] = the kernel string at reg, up to size bytes */
	FETCH_USER_STRING = 7,	/* the same from user memory */
	FETCH_COPY_LOAD = 8,	/* FETCH_LOAD whose fault is the value's final copy */
	FETCH_STACK = 9,	/* payload[dest] = frame count, then up to size bytes of frames */
	FETCH_CURRENT_TASK = 10,	/* reg = the current task's task_struct */
	FETCH_CONST = 11,	/* reg = operand */
	FETCH_PUSH = 12,	/* push reg onto the saved values */
	FETCH_POP_ADD = 13,	/* reg = the value popped + reg */
	FETCH_POP_SUB = 14,	/* reg = the value popped - reg */
	FETCH_USER_LOAD = 15,	/* reg = size bytes of user memory at reg: the value's final copy */
};

struct rstap_fetch_op {
	__u8 code;		/* enum rstap_fetch_code */
	__u8 unused;
	__u16 size;
	__u16 dest;
	__u16 unused2;
	__s64 operand;
};
/* The offsets FetchProgram::encode in fetch.rs writes each field at. */
_Static_assert(sizeof(struct rstap_fetch_op) == 16, "struct rstap_fetch_op must match fetch.rs");
_Static_assert(__builtin_offsetof(struct rstap_fetch_op, size) == 2, "size at 2");
_Static_assert(__builtin_offsetof(struct rstap_fetch_op, dest) == 4, "dest at 4");
_Static_assert(__builtin_offsetof(struct rstap_fetch_op, operand) == 8, "operand at 8");

struct rstap_fetch_program {
	__u32 op_count;
	__u32 payload_bytes;
	struct rstap_fetch_op ops[FETCH_MAX_OPS];
};
_Static_assert(sizeof(struct rstap_fetch_program) == 8 + FETCH_MAX_OPS * 16,
	       "struct rstap_fetch_program must match fetch.rs");
_Static_assert(__builtin_offsetof(struct rstap_fetch_program, payload_bytes) == 4,
	       "payload_bytes at 4");
_Static_assert(__builtin_offsetof(struct rstap_fetch_program, ops) == 8, "ops at 8");

/* The head of every payload: which values faulted, and which at their final copy. */
struct payload_faults {
	__u64 faulted;
	__u64 copy_faulted;
};

/*
 * Zero, where the verifier cannot see it. Kernels before 6.7 verify a bpf_loop callback
 * once, from the state of its first call: were the fields that carry from one fetch step
 * to the next (fault, value number, saved values) to start from constants, they would
 * follow only the branches the first step takes and drop the others as dead code (a
 * FETCH_POP would always find nothing saved, a load's fault would never be reported).
 */
__u32 fetch_opaque_zero = 0;

/* Where a fetch program's run has got to; bpf_loop's callback gets it at each step. */
struct fetch_state {
	void *ctx;		/* the program's context, for bpf_get_stack */
	const struct rstap_fetch_program *program;
	__u8 *payload;		/* PAYLOAD_MAX + STRING_MAX bytes, faults zeroed by the caller */
	const __u64 *args;
	__u64 return_value;
	__u64 reg;
	__u64 saved[FETCH_SAVED_MAX];
	__u32 saved_count;
	__u64 fault_address;	/* where the current value's read faulted */
	__u32 value;		/* the current value's number: its fault bit */
	__u32 fault;		/* enum fetch_fault of the current value */
};

enum fetch_fault {
	FETCH_FAULT_NONE = 0,
	FETCH_FAULT_READ = 1,	/* a read on the way to the value */
	FETCH_FAULT_COPY = 2,	/* the value's final copy (a string, kernel_long()) */
};

static __always_inline bool fetch_ends_value(__u8 code)
{
	return code == FETCH_STORE || code == FETCH_STRING || code == FETCH_USER_STRING ||
	       code == FETCH_STACK;
}

/*
 * One operation. Run through bpf_loop rather than an unrolled or bounded loop, so that the
 * verifier checks the step once instead of every path through every step.
 */
static long fetch_step(__u64 index, void *ctx)
{
	struct fetch_state *state = ctx;
	const struct rstap_fetch_op *op;
	struct payload_faults *faults;
	__u8 *payload = state->payload;
	__u32 dest, size;
	long err;

	if (index >= FETCH_MAX_OPS)
		return 1;
	op = &state->program->ops[index];
	dest = op->dest & (PAYLOAD_MAX - 1);
	size = op->size;
	if (state->fault && !fetch_ends_value(op->code))
		return 0;
	switch (op->code) {
	case FETCH_ARG: {
		__u64 n = op->operand;

		state->reg = n < FETCH_ARGS ? state->args[n] : 0;
		break;
	}
	case FETCH_RETURN:
		state->reg = state->return_value;
		break;
	case FETCH_CURRENT_TASK:
		state->reg = bpf_get_current_task();
		break;

	case FETCH_ADD:
		state->reg += op->operand;
		break;
	case FETCH_CONST:
		state->reg = op->operand;
		break;
	case FETCH_PUSH:
		if (state->saved_count >= FETCH_SAVED_MAX)
			return 1;
		state->saved[state->saved_count & (FETCH_SAVED_MAX - 1)] = state->reg;
		state->saved_count++;
		break;
	case FETCH_POP_ADD:
	case FETCH_POP_SUB: {
		__u64 saved;

		if (state->saved_count == 0)
			return 1;
		state->saved_count--;
		saved = state->saved[state->saved_count & (FETCH_SAVED_MAX - 1)];
		state->reg = op->code == FETCH_POP_ADD ? saved + state->reg : saved - state->reg;
		break;
	}
	case FETCH_LOAD:
	case FETCH_COPY_LOAD: {
		__u64 address = state->reg + op->operand, loaded = 0;

		err = bpf_probe_read_kernel(&loaded, size > 8 ? 8 : size, (void *)address);
		if (err) {
			state->fault = op->code == FETCH_COPY_LOAD ? FETCH_FAULT_COPY :
								     FETCH_FAULT_READ;
			state->fault_address = address;
		}
		state->reg = loaded;
		break;
	}
	case FETCH_USER_LOAD: {
		__u64 address = state->reg, loaded = 0;

		err = bpf_probe_read_user(&loaded, size > 8 ? 8 : size, (void *)address);
		if (err) {
			state->fault = FETCH_FAULT_COPY;
			state->fault_address = address;
		}
		state->reg = loaded;
		break;
	}
	case FETCH_STORE:
		*(__u64 *)(payload + dest) = state->fault ? state->fault_address : state->reg;
		break;
	case FETCH_STRING:
	case FETCH_USER_STRING:
		if (state->fault) {
			*(__u64 *)(payload + dest) = state->fault_address;
			break;
		}
		if (size > STRING_MAX)
			size = STRING_MAX;
		if (op->code == FETCH_STRING)
			err = bpf_probe_read_kernel_str(payload + dest, size, (void *)state->reg);
		else
			err = bpf_probe_read_user_str(payload + dest, size, (void *)state->reg);
		if (err < 0) {
			state->fault = FETCH_FAULT_COPY;
			*(__u64 *)(payload + dest) = state->reg;
		}
		break;
	case FETCH_STACK:
		if (size > STACK_MAX)
			size = STACK_MAX;
		err = bpf_get_stack(state->ctx, payload + dest + 8, size, 0);
		*(__u64 *)(payload + dest) = err > 0 ? (__u64)err >> 3 : 0;
		break;
	default:
		return 1;
	}
	if (fetch_ends_value(op->code)) {
		faults = (struct payload_faults *)payload;
		if (state->fault && state->value < 64) {
			faults->faulted |= 1ULL << state->value;
			if (state->fault == FETCH_FAULT_COPY)
				faults->copy_faulted |= 1ULL << state->value;
		}
		state->fault = FETCH_FAULT_NONE;
		state->value++;
	}
	return 0;
}

#endif
