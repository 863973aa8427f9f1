//===- moe-stream-bench.c - Read-only memory streaming rate ---------------===//
//
// The memory ceiling of the CPU benchmark (python/benchmarks/cpu.py): the best
// rate at which all threads together can read a buffer far larger than the
// caches. The layers' kernels only read their weights, so a copy (which also
// writes, and counts each byte twice) is not their ceiling.
//
// Each thread first touches, then reads, its own contiguous share of the
// buffer, split into S independent streams read side by side (S = 1, 2, 4, 8),
// with 64-byte AVX-512 loads where the CPU has AVX-512F and 32-byte AVX2 loads
// otherwise. Every load is folded into an XOR the program prints, so none can
// be dropped. The rate of S streams is the buffer's bytes over the best of the
// repeats' wall times (fork and join included); the result is the best S.
//
//   moe-stream-bench [--mib=N] [--repeats=N]    (threads: OMP_NUM_THREADS)
//
// prints one JSON object: the instruction set, the threads, the rate of each
// stream count and the best, in bytes per second.
//
//===----------------------------------------------------------------------===//

#include <errno.h>
#include <inttypes.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

enum { kBlockBytes = 256 }; // read from one stream per step
enum { kMaxStreams = 8 };
static const int kStreamCounts[] = {1, 2, 4, 8};
static const size_t kHugePage = 2u << 20; // alignment, for huge pages

typedef uint64_t (*ReadFn)(const char *part0, size_t partBytes);

// One reader per (instruction set, stream count): S is a constant in each, so
// the per-stream loop unrolls and every stream keeps its accumulator in a
// register. Stream s reads [part0 + s * partBytes, part0 + (s+1) * partBytes).
#if defined(__x86_64__)
#define DEFINE_READ_AVX512(S)                                                  \
  __attribute__((target("avx512f"))) static uint64_t readAvx512_##S(           \
      const char *part0, size_t partBytes) {                                   \
    __m512i acc[S];                                                            \
    for (int s = 0; s < S; ++s)                                                \
      acc[s] = _mm512_setzero_si512();                                         \
    for (size_t off = 0; off < partBytes; off += kBlockBytes)                  \
      for (int s = 0; s < S; ++s) {                                            \
        const char *q = part0 + (size_t)s * partBytes + off;                   \
        __m512i a =                                                            \
            _mm512_xor_si512(_mm512_load_si512(q), _mm512_load_si512(q + 64)); \
        __m512i b = _mm512_xor_si512(_mm512_load_si512(q + 128),               \
                                     _mm512_load_si512(q + 192));              \
        acc[s] = _mm512_xor_si512(acc[s], _mm512_xor_si512(a, b));             \
      }                                                                        \
    __m512i all = acc[0];                                                      \
    for (int s = 1; s < S; ++s)                                                \
      all = _mm512_xor_si512(all, acc[s]);                                     \
    uint64_t lanes[8];                                                         \
    _mm512_storeu_si512(lanes, all);                                           \
    return lanes[0] ^ lanes[3] ^ lanes[7];                                     \
  }
#define DEFINE_READ_AVX2(S)                                                    \
  __attribute__((target("avx2"))) static uint64_t readAvx2_##S(                \
      const char *part0, size_t partBytes) {                                   \
    __m256i acc[S];                                                            \
    for (int s = 0; s < S; ++s)                                                \
      acc[s] = _mm256_setzero_si256();                                         \
    for (size_t off = 0; off < partBytes; off += kBlockBytes)                  \
      for (int s = 0; s < S; ++s) {                                            \
        const __m256i *q =                                                     \
            (const __m256i *)(part0 + (size_t)s * partBytes + off);            \
        __m256i a =                                                            \
            _mm256_xor_si256(_mm256_load_si256(q), _mm256_load_si256(q + 1));  \
        __m256i b = _mm256_xor_si256(_mm256_load_si256(q + 2),                 \
                                     _mm256_load_si256(q + 3));                \
        __m256i c = _mm256_xor_si256(_mm256_load_si256(q + 4),                 \
                                     _mm256_load_si256(q + 5));                \
        __m256i d = _mm256_xor_si256(_mm256_load_si256(q + 6),                 \
                                     _mm256_load_si256(q + 7));                \
        acc[s] = _mm256_xor_si256(                                             \
            acc[s],                                                            \
            _mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d))); \
      }                                                                        \
    __m256i all = acc[0];                                                      \
    for (int s = 1; s < S; ++s)                                                \
      all = _mm256_xor_si256(all, acc[s]);                                     \
    uint64_t lanes[4];                                                         \
    _mm256_storeu_si256((__m256i *)lanes, all);                                \
    return lanes[0] ^ lanes[3];                                                \
  }
DEFINE_READ_AVX512(1)
DEFINE_READ_AVX512(2)
DEFINE_READ_AVX512(4)
DEFINE_READ_AVX512(8)
DEFINE_READ_AVX2(1)
DEFINE_READ_AVX2(2)
DEFINE_READ_AVX2(4)
DEFINE_READ_AVX2(8)
static const ReadFn kAvx512Readers[] = {readAvx512_1, readAvx512_2,
                                        readAvx512_4, readAvx512_8};
static const ReadFn kAvx2Readers[] = {readAvx2_1, readAvx2_2, readAvx2_4,
                                      readAvx2_8};
#endif

// Elsewhere (no x86), 64-bit loads the compiler may vectorize.
#define DEFINE_READ_PORTABLE(S)                                                \
  static uint64_t readPortable_##S(const char *part0, size_t partBytes) {      \
    uint64_t acc[S] = {0};                                                     \
    for (size_t off = 0; off < partBytes; off += kBlockBytes)                  \
      for (int s = 0; s < S; ++s) {                                            \
        const uint64_t *q =                                                    \
            (const uint64_t *)(part0 + (size_t)s * partBytes + off);           \
        for (int i = 0; i < kBlockBytes / 8; ++i)                              \
          acc[s] ^= q[i];                                                      \
      }                                                                        \
    uint64_t all = 0;                                                          \
    for (int s = 0; s < S; ++s)                                                \
      all ^= acc[s];                                                           \
    return all;                                                                \
  }
DEFINE_READ_PORTABLE(1)
DEFINE_READ_PORTABLE(2)
DEFINE_READ_PORTABLE(4)
DEFINE_READ_PORTABLE(8)
static const ReadFn kPortableReaders[] = {readPortable_1, readPortable_2,
                                          readPortable_4, readPortable_8};

// Parses --name=N into *value, a whole number in [1, max]; false (after a
// diagnostic naming the option) if the text is not one.
static int parseCount(const char *arg, const char *name, unsigned long max,
                      unsigned long *value) {
  size_t len = strlen(name);
  if (strncmp(arg, name, len) != 0 || arg[len] != '=')
    return 0;
  const char *text = arg + len + 1;
  char *end = NULL;
  errno = 0;
  unsigned long parsed = strtoul(text, &end, 10);
  if (*text < '0' || *text > '9' || *end != '\0' || errno != 0 || parsed < 1 ||
      parsed > max) {
    fprintf(stderr,
            "moe-stream-bench: error: %s expects a whole number in [1, %lu], "
            "got '%s'\n",
            name, max, text);
    exit(2);
  }
  *value = parsed;
  return 1;
}

int main(int argc, char **argv) {
  unsigned long mib = 1024, repeats = 20;
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      printf("usage: moe-stream-bench [--mib=N] [--repeats=N]\n"
             "Prints the best read-only streaming rate of all OpenMP threads "
             "(OMP_NUM_THREADS) over an N MiB buffer (default 1024), as "
             "JSON.\n");
      return 0;
    }
    if (parseCount(argv[i], "--mib", 1u << 20, &mib) ||
        parseCount(argv[i], "--repeats", 1000, &repeats))
      continue;
    fprintf(stderr, "moe-stream-bench: error: unknown argument '%s'\n",
            argv[i]);
    return 2;
  }

  const char *isa = "portable";
  const ReadFn *readers = kPortableReaders;
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) {
    isa = "avx512";
    readers = kAvx512Readers;
  } else if (__builtin_cpu_supports("avx2")) {
    isa = "avx2";
    readers = kAvx2Readers;
  }
#endif

  // Every thread's share is a whole number of blocks of every stream count.
  const int threads = omp_get_max_threads();
  const size_t unit = (size_t)threads * kMaxStreams * kBlockBytes;
  const size_t bytes = ((size_t)mib << 20) / unit * unit;
  if (bytes == 0) {
    fprintf(stderr,
            "moe-stream-bench: error: --mib=%lu is smaller than one block "
            "per stream per thread (%zu bytes)\n",
            mib, unit);
    return 2;
  }
  char *buffer =
      aligned_alloc(kHugePage, (bytes + kHugePage - 1) / kHugePage * kHugePage);
  if (!buffer) {
    fprintf(stderr, "moe-stream-bench: error: cannot allocate %zu bytes\n",
            bytes);
    return 1;
  }
  // Huge pages where the kernel offers them (numpy asks for them too), so
  // the TLB does not limit the stream; a refusal only costs speed.
  (void)madvise(buffer, bytes, MADV_HUGEPAGE);
  const size_t share = bytes / threads;
#pragma omp parallel
  {
    // First touch by the thread that reads the share later (its NUMA node).
    const size_t first = (size_t)omp_get_thread_num() * share;
    for (size_t i = 0; i < share; i += sizeof(uint64_t)) {
      uint64_t x = (first + i + 1) * 0x9E3779B97F4A7C15ull; // splitmix64
      x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
      x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
      *(uint64_t *)(buffer + first + i) = x ^ (x >> 31);
    }
  }

  // The stream counts take turns within each repeat, so that a slow spell
  // of a shared machine costs one sample of each instead of a whole sweep.
  enum { kCounts = sizeof kStreamCounts / sizeof *kStreamCounts };
  double fastest[kCounts] = {0};
  uint64_t checksum = 0;
  for (unsigned long r = 0; r <= repeats; ++r) { // repeat 0 warms up
    for (int c = 0; c < kCounts; ++c) {
      const int streams = kStreamCounts[c];
      const ReadFn readShare = readers[c];
      uint64_t folded = 0;
      double start = omp_get_wtime();
#pragma omp parallel reduction(^ : folded)
      folded ^= readShare(buffer + (size_t)omp_get_thread_num() * share,
                          share / streams);
      double seconds = omp_get_wtime() - start;
      // XOR is order-free: every pass of every stream count folds the whole
      // buffer to the same value, or some bytes were not read.
      if (r == 0 && c == 0)
        checksum = folded;
      else if (folded != checksum) {
        fprintf(stderr,
                "moe-stream-bench: error: a pass of %d streams read other "
                "bytes than the first pass\n",
                streams);
        return 1;
      }
      if (r > 0 && (fastest[c] == 0 || seconds < fastest[c]))
        fastest[c] = seconds;
    }
  }
  double rates[kCounts];
  double best = 0;
  int bestStreams = 0;
  for (int c = 0; c < kCounts; ++c) {
    rates[c] = bytes / fastest[c];
    if (rates[c] > best) {
      best = rates[c];
      bestStreams = kStreamCounts[c];
    }
  }
  free(buffer);

  printf("{\"isa\": \"%s\", \"threads\": %d, \"bytes\": %zu, \"repeats\": %lu, "
         "\"read_bytes_per_s\": {",
         isa, threads, bytes, repeats);
  for (int c = 0; c < kCounts; ++c)
    printf("%s\"%d\": %.6e", c ? ", " : "", kStreamCounts[c], rates[c]);
  printf("}, \"best_read_bytes_per_s\": %.6e, \"best_streams\": %d, "
         "\"checksum\": \"%016" PRIx64 "\"}\n",
         best, bestStreams, checksum);
  return 0;
}
