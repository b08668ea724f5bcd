// Column sums in two passes: per-chunk partials, then a fixed-order sum of the partials.
#include "reduce.cuh"

#include "element.cuh"

namespace mm::cuda {

namespace {
constexpr int kRowsPerChunk = 256, kThreadRows = 8;

// One block per (32-column tile, chunk of `chunk_rows` rows): thread row y sums rows y, y + 8, ... of
// the chunk, then the thread rows are added in order into out[chunk, c]. The first pass: partials over
// 256-row chunks.
template <class E>
__global__ void sum_column_chunks(float* out, const E* src, int rows, int cols, int chunk_rows) {
  __shared__ float sums[kThreadRows][32];
  const int c = blockIdx.x * 32 + threadIdx.x, chunk = blockIdx.y;
  const int r0 = chunk * chunk_rows, r1 = min(rows, r0 + chunk_rows);
  float s = 0.f;
  if (c < cols)
    for (int r = r0 + threadIdx.y; r < r1; r += kThreadRows) s += as_float(src[static_cast<size_t>(r) * cols + c]);
  sums[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    for (int k = 1; k < kThreadRows; ++k) s += sums[k][threadIdx.x];
    out[static_cast<size_t>(chunk) * cols + c] = s;
  }
}

// The second pass, dst[c] += sum_k partial[k, c]: one block per 32-column tile with 32 thread rows;
// thread row y sums chunks y, y + 32, ... into four interleaved sums (loads in flight together), then
// the thread rows are added in order. Partials may be thousands of rows tall (one per block of a fused
// kernel), so the chunks are spread over many threads rather than summed by a few.
constexpr int kPartialRows = 32;
// blockIdx.y = 1 (a second grid row) sums the second stack partial[chunks + k, c] into dst2.
__global__ void accumulate_partials_kernel(float* dst, float* dst2, const float* partial, int chunks, int cols) {
  __shared__ float sums[kPartialRows][33];
  const int c = blockIdx.x * 32 + threadIdx.x;
  if (blockIdx.y == 1) {
    dst = dst2;
    partial += static_cast<size_t>(chunks) * cols;
  }
  float s[4] = {0.f, 0.f, 0.f, 0.f};
  if (c < cols) {
    int k = threadIdx.y;
    for (; k + 3 * kPartialRows < chunks; k += 4 * kPartialRows)
#pragma unroll
      for (int j = 0; j < 4; ++j) s[j] += partial[static_cast<size_t>(k + j * kPartialRows) * cols + c];
    for (; k < chunks; k += kPartialRows) s[0] += partial[static_cast<size_t>(k) * cols + c];
  }
  sums[threadIdx.y][threadIdx.x] = (s[0] + s[1]) + (s[2] + s[3]);
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    float total = 0.f;
    for (int r = 0; r < kPartialRows; ++r) total += sums[r][threadIdx.x];
    dst[c] += total;
  }
}

template <class E>
void column_sum(Context& ctx, float* dst, const E* src, int rows, int cols) {
  const int chunks = (rows + kRowsPerChunk - 1) / kRowsPerChunk;
  float* partial = ctx.scratch(kSlotColumnPartial, static_cast<size_t>(chunks) * cols);
  sum_column_chunks<E><<<dim3((cols + 31) / 32, chunks), dim3(32, kThreadRows), 0, ctx.stream()>>>(partial, src, rows, cols, kRowsPerChunk);
  MM_LAUNCH_CHECK();
  accumulate_partials(ctx, dst, partial, chunks, cols);
}
}  // namespace

void column_sum_accumulate(Context& ctx, float* dst, const float* src, int rows, int cols) { column_sum(ctx, dst, src, rows, cols); }
void column_sum_accumulate(Context& ctx, float* dst, const __nv_bfloat16* src, int rows, int cols) { column_sum(ctx, dst, src, rows, cols); }

void accumulate_partials(Context& ctx, float* dst, const float* partial, int chunks, int cols, float* dst2) {
  accumulate_partials_kernel<<<dim3((cols + 31) / 32, dst2 ? 2 : 1), dim3(32, kPartialRows), 0, ctx.stream()>>>(dst, dst2, partial, chunks, cols);
  MM_LAUNCH_CHECK();
}

}  // namespace mm::cuda
