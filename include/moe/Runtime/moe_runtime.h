/*===- moe_runtime.h - The C ABI of MoE-MLIR artifacts -------------*- C -*-===*
 *
 * Every artifact compiled by moe-compile (CPU or CUDA) exports, per layer
 * <name>, the same three functions, declared in its generated header:
 *
 *   size_t      moe_<name>_workspace_size(int64_t num_tokens);
 *   moe_status  moe_<name>_forward(<tensor pointers>, int64_t num_tokens,
 *                                  void *workspace, size_t workspace_size,
 *                                  void *stream);
 *   const char *moe_<name>_status_string(moe_status status);
 *
 * A CPU artifact also exports `const char *moe_<name>_cpu_variant(void)`:
 * the CPU its running kernel was compiled for (one of --chip's), or NULL when
 * this CPU runs none of them and every call returns MOE_STATUS_UNSUPPORTED.
 *
 * Calls never print, abort or exit: every failure is a status code. A CUDA
 * artifact loads its kernels once per CUDA context, on the first call made
 * in it, under a lock; calls run in the calling thread's current context.
 *
 *===----------------------------------------------------------------------===*/

#ifndef MOE_RUNTIME_MOE_RUNTIME_H
#define MOE_RUNTIME_MOE_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

/* The ABI version; a header and an artifact work together when equal. */
#define MOE_ABI_VERSION_MAJOR 1
#define MOE_ABI_VERSION_MINOR 1

typedef enum moe_status {
  MOE_STATUS_SUCCESS = 0,
  MOE_STATUS_NULL_POINTER = 1,       /* a tensor pointer is NULL */
  MOE_STATUS_MISALIGNED = 2,         /* a tensor is not aligned to its element */
  MOE_STATUS_BAD_NUM_TOKENS = 3,     /* num_tokens outside [1, max_tokens] */
  MOE_STATUS_WORKSPACE_TOO_SMALL = 4,/* workspace_size below the query */
  MOE_STATUS_UNSUPPORTED = 5,        /* e.g. a stream given to a CPU artifact */
  MOE_STATUS_DEVICE_ERROR = 6,       /* the driver reported an error */
  MOE_STATUS_OUT_OF_MEMORY = 7,
  MOE_STATUS_NOT_DEVICE_MEMORY = 8   /* CUDA: a pointer the device cannot
                                        address (e.g. plain host memory) */
} moe_status;

#endif /* MOE_RUNTIME_MOE_RUNTIME_H */
