/* Calls a MoE layer compiled ahead of time by moe-compile through its C ABI.
 *
 *   moe-compile --layer=hidden=64,intermediate=32,experts=8,k=2,renormalize \
 *               --name=example --emit=so,header -o out/
 *   cc -std=c99 -Wall -Wextra -Werror -Iout docs/examples/layer_example.c \
 *      -Lout -lmoe_example -Wl,-rpath,out -o layer_example
 *   ./layer_example            # prints y[0][0..3] and checks the error paths
 *
 * The inputs are deterministic (a small linear congruential generator) so
 * the output can be compared with the numpy oracle.
 */
#include <stdio.h>
#include <stdlib.h>

#include "moe_example.h"

enum { T = 5, H = 64, I = 32, E = 8 };

static float next_value(unsigned *state) {
  *state = *state * 1664525u + 1013904223u;
  return ((float)(*state >> 8) / 16777216.0f - 0.5f) * 0.5f;
}

static float *filled(size_t count, unsigned seed) {
  float *data = malloc(count * sizeof(float));
  unsigned state = seed;
  size_t i;
  if (!data)
    return NULL;
  for (i = 0; i < count; ++i)
    data[i] = next_value(&state);
  return data;
}

int main(int argc, char **argv) {
  float *x = filled((size_t)T * H, 1u);
  float *router = filled((size_t)E * H, 2u);
  float *w13 = filled((size_t)E * 2 * I * H, 3u);
  float *w2 = filled((size_t)E * H * I, 4u);
  float *y = calloc((size_t)T * H, sizeof(float));
  size_t workspace_size = moe_example_workspace_size(T);
  void *workspace = workspace_size ? malloc(workspace_size) : NULL;
  moe_status status;
  int t, h;
  FILE *dump = NULL;

  if (!x || !router || !w13 || !w2 || !y || (workspace_size && !workspace))
    return 2;

  status = moe_example_forward(x, router, w13, w2, y, T, workspace,
                               workspace_size, NULL);
  if (status != MOE_STATUS_SUCCESS) {
    fprintf(stderr, "forward: %s\n", moe_example_status_string(status));
    return 1;
  }
  printf("y[0][0..3] = %f %f %f %f\n", y[0], y[1], y[2], y[3]);

  /* Bad arguments come back as status codes. */
  if (moe_example_forward(NULL, router, w13, w2, y, T, workspace,
                          workspace_size, NULL) != MOE_STATUS_NULL_POINTER ||
      moe_example_forward(x, router, w13, w2, y, 0, workspace, workspace_size,
                          NULL) != MOE_STATUS_BAD_NUM_TOKENS ||
      moe_example_forward((const char *)x + 1, router, w13, w2, y, T,
                          workspace, workspace_size,
                          NULL) != MOE_STATUS_MISALIGNED) {
    fprintf(stderr, "an invalid call was not refused\n");
    return 1;
  }
  printf("error paths: %s; %s; %s\n",
         moe_example_status_string(MOE_STATUS_NULL_POINTER),
         moe_example_status_string(MOE_STATUS_BAD_NUM_TOKENS),
         moe_example_status_string(MOE_STATUS_MISALIGNED));

  /* With a path argument, write y as text for a comparison elsewhere. */
  if (argc > 1 && (dump = fopen(argv[1], "w")) != NULL) {
    for (t = 0; t < T; ++t)
      for (h = 0; h < H; ++h)
        fprintf(dump, "%.9g\n", y[t * H + h]);
    fclose(dump);
  }
  free(x);
  free(router);
  free(w13);
  free(w2);
  free(y);
  free(workspace);
  return 0;
}
