// Deterministic reductions: warp/block sums, and column sums of a [rows, cols] matrix done in two
// fixed-order passes (no float atomics, so results are bit-identical run to run).
#pragma once
#include "context.cuh"

namespace mm::cuda {

__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// dst[c] += sum_r src[r, c] over rows in fixed order (two passes).
void column_sum_accumulate(Context& ctx, float* dst, const float* src, int rows, int cols);
void column_sum_accumulate(Context& ctx, float* dst, const __nv_bfloat16* src, int rows, int cols);

// Second pass of a two-pass column sum: dst[c] += sum_k partial[k, c] for k < chunks, in order. With
// dst2, also dst2[c] += sum_k partial[chunks + k, c] (a second stack right after the first) in the same
// launch.
void accumulate_partials(Context& ctx, float* dst, const float* partial, int chunks, int cols, float* dst2 = nullptr);

}  // namespace mm::cuda
