"""The expert-layer shapes of the benchmark grid (BENCHMARKS.md): H, I, E, k."""

BENCHMARK_SHAPES = {
    "mixtral-8x7b": (4096, 14336, 8, 2),
    "qwen3-30b-a3b": (2048, 768, 128, 8),
    "deepseek-v3": (7168, 2048, 256, 8),
}
