// Column sums in two passes: per-chunk partials, then a fixed-order sum of the partials.
#include "reduce.cuh"

namespace mm::cuda {

namespace {
constexpr int kRowsPerChunk = 256, kThreadRows = 8;

// One block per (32-column tile, chunk of rows): thread rows sum strided rows, then are summed in order.
__global__ void column_partials(float* partial, const float* src, int rows, int cols) {
  __shared__ float sums[kThreadRows][32];
  const int c = blockIdx.x * 32 + threadIdx.x;
  const int chunk = blockIdx.y;
  const int r0 = chunk * kRowsPerChunk, r1 = min(rows, r0 + kRowsPerChunk);
  float s = 0.f;
  if (c < cols)
    for (int r = r0 + threadIdx.y; r < r1; r += kThreadRows) s += src[static_cast<size_t>(r) * cols + c];
  sums[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    for (int k = 1; k < kThreadRows; ++k) s += sums[k][threadIdx.x];
    partial[static_cast<size_t>(chunk) * cols + c] = s;
  }
}

__global__ void column_finish(float* dst, const float* partial, int chunks, int cols) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  float s = 0.f;
  for (int k = 0; k < chunks; ++k) s += partial[static_cast<size_t>(k) * cols + c];
  dst[c] += s;
}
}  // namespace

void column_sum_accumulate(Context& ctx, float* dst, const float* src, int rows, int cols) {
  const int chunks = (rows + kRowsPerChunk - 1) / kRowsPerChunk;
  float* partial = ctx.scratch(kSlotColumnPartial, static_cast<size_t>(chunks) * cols);
  column_partials<<<dim3((cols + 31) / 32, chunks), dim3(32, kThreadRows), 0, ctx.stream()>>>(partial, src, rows, cols);
  MM_LAUNCH_CHECK();
  accumulate_partials(ctx, dst, partial, chunks, cols);
}

void accumulate_partials(Context& ctx, float* dst, const float* partial, int chunks, int cols) {
  column_finish<<<blocks_for(cols, 128), 128, 0, ctx.stream()>>>(dst, partial, chunks, cols);
  MM_LAUNCH_CHECK();
}

}  // namespace mm::cuda
