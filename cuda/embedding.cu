// Embedding kernels.
#include "embedding.cuh"

#include <algorithm>
#include <cub/device/device_radix_sort.cuh>

namespace mm::cuda {

namespace {

__global__ void embedding_forward_kernel(float* out, const int32_t* tokens, const float* wte, const float* wpe, int N, int T, int D) {
  const size_t total = static_cast<size_t>(N) * D;
  for (size_t k = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; k < total; k += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t n = k / D, d = k % D;
    float x = wte[static_cast<size_t>(tokens[n]) * D + d];
    if (wpe) x += wpe[(n % T) * D + d];
    out[k] = x;
  }
}

__global__ void iota_kernel(int32_t* x, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) x[i] = i;
}

// The first index i of sorted[0, n) with sorted[i] >= v (n when none).
__device__ __forceinline__ int first_at_least(const int32_t* sorted, int n, int v) {
  int lo = 0, hi = n;
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (sorted[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// Block v adds to dwte row v the rows n of dout with tokens[n] == v: they are positions[first..last) of
// the positions sorted (stably) by token, found by binary search. Warp w sums rows first + w, first + w +
// warps, ... into its own shared row (so a frequent token's rows stream through every warp at once),
// and the warps' rows are then added in order: a fixed summation order, the same on every run.
__global__ void embedding_backward_kernel(float* dwte, const float* dout, const int32_t* sorted_tokens, const int32_t* positions, int N, int D) {
  extern __shared__ float warp_rows[];  // [warps][D]
  const int v = blockIdx.x, warps = blockDim.x / 32, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int first = first_at_least(sorted_tokens, N, v), last = first_at_least(sorted_tokens, N, v + 1);
  if (last == first) return;  // v does not occur (uniform across the block)
  float* mine = warp_rows + static_cast<size_t>(warp) * D;
  for (int d = lane; d < D; d += 32) mine[d] = 0.f;
  for (int i = first + warp; i < last; i += warps) {
    const float* g = dout + static_cast<size_t>(positions[i]) * D;
    for (int d = lane; d < D; d += 32) mine[d] += g[d];
  }
  __syncthreads();
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float acc = 0.f;
    for (int w = 0; w < warps; ++w) acc += warp_rows[static_cast<size_t>(w) * D + d];
    dwte[static_cast<size_t>(v) * D + d] += acc;
  }
}

__global__ void position_backward_kernel(float* dwpe, const float* dout, int N, int T, int D) {
  const size_t total = static_cast<size_t>(T) * D;
  for (size_t k = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; k < total; k += static_cast<size_t>(gridDim.x) * blockDim.x) {
    float s = 0.f;
    for (int b = 0; b < N / T; ++b) s += dout[static_cast<size_t>(b) * T * D + k];
    dwpe[k] += s;
  }
}

int grid(Context& ctx, size_t n) { return static_cast<int>(std::min<size_t>(blocks_for(n, 256), static_cast<size_t>(ctx.sm_count()) * 16)); }
}  // namespace

void embedding_forward(Context& ctx, float* out, const int32_t* tokens, const float* wte, const float* wpe, int N, int T, int D) {
  embedding_forward_kernel<<<grid(ctx, static_cast<size_t>(N) * D), 256, 0, ctx.stream()>>>(out, tokens, wte, wpe, N, T, D);
  MM_LAUNCH_CHECK();
}

void embedding_backward(Context& ctx, float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int N, int T, int D, int V) {
  // (token, position) pairs sorted by token with a stable radix sort, so each token's rows are summed in
  // increasing position: the same order, and result, on every run
  auto* order = reinterpret_cast<int32_t*>(ctx.scratch(kSlotTokenOrder, static_cast<size_t>(3) * N));
  int32_t *positions = order, *sorted_tokens = order + N, *sorted_positions = order + 2 * N;
  iota_kernel<<<grid(ctx, N), 256, 0, ctx.stream()>>>(positions, N);
  MM_LAUNCH_CHECK();
  int bits = 1;
  while (bits < 31 && (1 << bits) < V) ++bits;
  size_t temp_bytes = 0;
  MM_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, tokens, sorted_tokens, positions, sorted_positions, N, 0, bits, ctx.stream()));
  void* temp = ctx.scratch(kSlotSortTemp, temp_bytes / sizeof(float) + 1);
  MM_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, tokens, sorted_tokens, positions, sorted_positions, N, 0, bits, ctx.stream()));
  const int warps = std::clamp(12288 / D, 1, 8);  // a shared row per warp, within 48 KB where D allows
  const size_t shared = sizeof(float) * warps * D;
  if (shared > 48 * 1024)
    MM_CUDA_CHECK(cudaFuncSetAttribute(embedding_backward_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared)));
  embedding_backward_kernel<<<V, 32 * warps, shared, ctx.stream()>>>(dwte, dout, sorted_tokens, sorted_positions, N, D);
  MM_LAUNCH_CHECK();
  if (dwpe) {
    position_backward_kernel<<<grid(ctx, static_cast<size_t>(T) * D), 256, 0, ctx.stream()>>>(dwpe, dout, N, T, D);
    MM_LAUNCH_CHECK();
  }
}

}  // namespace mm::cuda
