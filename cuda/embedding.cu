// Embedding kernels.
#include "embedding.cuh"

#include <algorithm>
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

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

// The backward pass sums, per token v, the rows n of dout with tokens[n] == v: positions[first..last)
// of the positions sorted (stably) by token, found by binary search. A token's rows are cut into pieces
// of kPieceRows (in sorted order); piece_start[v] (an exclusive scan of the piece counts) numbers them,
// so a frequent token (the pad of left-padded rows fills half of a batch) is summed by many blocks, not
// one. Pieces are summed in order, then each token's pieces in order: the same result on every run.
constexpr int kPieceRows = 64;

__global__ void token_pieces_kernel(int32_t* pieces, const int32_t* sorted_tokens, int N, int V) {
  const int v = blockIdx.x * blockDim.x + threadIdx.x;
  if (v >= V) return;
  const int count = first_at_least(sorted_tokens, N, v + 1) - first_at_least(sorted_tokens, N, v);
  pieces[v] = (count + kPieceRows - 1) / kPieceRows;
}

// Block b sums piece b into partial[b, :]: the piece of the token v with the largest piece_start[v] <= b
// (tokens without rows have no pieces, so they share their start with the next token and are skipped).
// Warp w sums rows w, w + warps, ... of the piece into its own shared row; the warps' rows are then added
// in order.
__global__ void embedding_piece_sums(float* partial, const float* dout, const int32_t* sorted_tokens, const int32_t* positions, const int32_t* piece_start,
                                     const int32_t* pieces, int N, int V, int D) {
  extern __shared__ float warp_rows[];  // [warps][D]
  const int b = blockIdx.x, warps = blockDim.x / 32, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (b >= piece_start[V - 1] + pieces[V - 1]) return;  // past the last piece (the grid is an upper bound)
  int lo = 0, hi = V - 1;  // the largest v with piece_start[v] <= b
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (piece_start[mid] <= b) lo = mid;
    else hi = mid - 1;
  }
  const int v = lo, first_row = first_at_least(sorted_tokens, N, v) + (b - piece_start[v]) * kPieceRows;
  const int last_row = min(first_at_least(sorted_tokens, N, v + 1), first_row + kPieceRows);
  float* mine = warp_rows + static_cast<size_t>(warp) * D;
  for (int d = lane; d < D; d += 32) mine[d] = 0.f;
  for (int i = first_row + warp; i < last_row; i += warps) {
    const float* g = dout + static_cast<size_t>(positions[i]) * D;
    for (int d = lane; d < D; d += 32) mine[d] += g[d];
  }
  __syncthreads();
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float acc = 0.f;
    for (int w = 0; w < warps; ++w) acc += warp_rows[static_cast<size_t>(w) * D + d];
    partial[static_cast<size_t>(b) * D + d] = acc;
  }
}

// dwte[v, d] += the sum of token v's pieces, in order; blocks take (token, 256 columns).
__global__ void embedding_add_pieces(float* dwte, const float* partial, const int32_t* piece_start, const int32_t* pieces, int D) {
  const int v = blockIdx.y, d = blockIdx.x * blockDim.x + threadIdx.x;
  if (d >= D || pieces[v] == 0) return;
  float acc = 0.f;
  for (int p = 0; p < pieces[v]; ++p) acc += partial[static_cast<size_t>(piece_start[v] + p) * D + d];
  dwte[static_cast<size_t>(v) * D + d] += acc;
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
  // pieces per token, their exclusive scan, the piece sums, then each token's pieces
  auto* piece_counts = reinterpret_cast<int32_t*>(ctx.scratch(kSlotTokenPieces, static_cast<size_t>(2) * V));
  int32_t *pieces = piece_counts, *piece_start = piece_counts + V;
  token_pieces_kernel<<<blocks_for(V, 256), 256, 0, ctx.stream()>>>(pieces, sorted_tokens, N, V);
  MM_LAUNCH_CHECK();
  size_t scan_bytes = 0;
  MM_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(nullptr, scan_bytes, pieces, piece_start, V, ctx.stream()));
  void* scan_temp = ctx.scratch(kSlotScanTemp, scan_bytes / sizeof(float) + 1);
  MM_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(scan_temp, scan_bytes, pieces, piece_start, V, ctx.stream()));
  const int max_pieces = (N + kPieceRows - 1) / kPieceRows + std::min(N, V);  // sum over tokens of ceil(count / rows)
  float* partial = ctx.scratch(kSlotEmbeddingPieces, static_cast<size_t>(max_pieces) * D);
  const int warps = std::clamp(12288 / D, 1, 8);  // a shared row per warp, within 48 KB where D allows
  const size_t shared = sizeof(float) * warps * D;
  if (shared > 48 * 1024)
    MM_CUDA_CHECK(cudaFuncSetAttribute(embedding_piece_sums, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared)));
  embedding_piece_sums<<<max_pieces, 32 * warps, shared, ctx.stream()>>>(partial, dout, sorted_tokens, sorted_positions, piece_start, pieces, N, V, D);
  MM_LAUNCH_CHECK();
  embedding_add_pieces<<<dim3(blocks_for(D, 256), V), 256, 0, ctx.stream()>>>(dwte, partial, piece_start, pieces, D);
  MM_LAUNCH_CHECK();
  if (dwpe) {
    position_backward_kernel<<<grid(ctx, static_cast<size_t>(T) * D), 256, 0, ctx.stream()>>>(dwpe, dout, N, T, D);
    MM_LAUNCH_CHECK();
  }
}

}  // namespace mm::cuda
