// Column sums in two passes: per-chunk partials, then a fixed-order sum of the partials.
#include "reduce.cuh"

namespace mm::cuda {

namespace {
constexpr int kRowsPerChunk = 256, kThreadRows = 8;

// One block per (32-column tile, chunk of rows): thread rows sum strided rows, then are summed in order.
__device__ __forceinline__ float as_float(float x) { return x; }
__device__ __forceinline__ float as_float(__nv_bfloat16 x) { return __bfloat162float(x); }

template <class E>
__global__ void column_partials(float* partial, const E* src, int rows, int cols) {
  __shared__ float sums[kThreadRows][32];
  const int c = blockIdx.x * 32 + threadIdx.x;
  const int chunk = blockIdx.y;
  const int r0 = chunk * kRowsPerChunk, r1 = min(rows, r0 + kRowsPerChunk);
  float s = 0.f;
  if (c < cols)
    for (int r = r0 + threadIdx.y; r < r1; r += kThreadRows) s += as_float(src[static_cast<size_t>(r) * cols + c]);
  sums[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    for (int k = 1; k < kThreadRows; ++k) s += sums[k][threadIdx.x];
    partial[static_cast<size_t>(chunk) * cols + c] = s;
  }
}

// One block per 32-column tile: thread row y sums chunks y, y + 8, ..., then the thread rows in order.
__global__ void column_finish(float* dst, const float* partial, int chunks, int cols) {
  __shared__ float sums[kThreadRows][32];
  const int c = blockIdx.x * 32 + threadIdx.x;
  float s = 0.f;
  if (c < cols)
    for (int k = threadIdx.y; k < chunks; k += kThreadRows) s += partial[static_cast<size_t>(k) * cols + c];
  sums[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    for (int k = 1; k < kThreadRows; ++k) s += sums[k][threadIdx.x];
    dst[c] += s;
  }
}

template <class E>
void column_sum(Context& ctx, float* dst, const E* src, int rows, int cols) {
  const int chunks = (rows + kRowsPerChunk - 1) / kRowsPerChunk;
  float* partial = ctx.scratch(kSlotColumnPartial, static_cast<size_t>(chunks) * cols);
  column_partials<<<dim3((cols + 31) / 32, chunks), dim3(32, kThreadRows), 0, ctx.stream()>>>(partial, src, rows, cols);
  MM_LAUNCH_CHECK();
  accumulate_partials(ctx, dst, partial, chunks, cols);
}
}  // namespace

void column_sum_accumulate(Context& ctx, float* dst, const float* src, int rows, int cols) { column_sum(ctx, dst, src, rows, cols); }
void column_sum_accumulate(Context& ctx, float* dst, const __nv_bfloat16* src, int rows, int cols) { column_sum(ctx, dst, src, rows, cols); }

void accumulate_partials(Context& ctx, float* dst, const float* partial, int chunks, int cols) {
  column_finish<<<(cols + 31) / 32, dim3(32, kThreadRows), 0, ctx.stream()>>>(dst, partial, chunks, cols);
  MM_LAUNCH_CHECK();
}

}  // namespace mm::cuda
