// Embedding kernels.
#include "embedding.cuh"

namespace mm::cuda {

namespace {
constexpr int kChunk = 1024;

__global__ void embedding_forward_kernel(float* out, const int32_t* tokens, const float* wte, const float* wpe, int N, int T, int D) {
  const size_t total = static_cast<size_t>(N) * D;
  for (size_t k = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; k < total; k += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t n = k / D, d = k % D;
    float x = wte[static_cast<size_t>(tokens[n]) * D + d];
    if (wpe) x += wpe[(n % T) * D + d];
    out[k] = x;
  }
}

// Block v accumulates every row n with tokens[n] == v, in increasing n.
__global__ void embedding_backward_kernel(float* dwte, const float* dout, const int32_t* tokens, int N, int D) {
  const int v = blockIdx.x;
  __shared__ int32_t chunk[kChunk];
  __shared__ int matches[kChunk];
  __shared__ int n_matches;
  extern __shared__ float acc[];  // D floats
  for (int d = threadIdx.x; d < D; d += blockDim.x) acc[d] = 0.f;
  for (int base = 0; base < N; base += kChunk) {
    const int len = min(kChunk, N - base);
    if (threadIdx.x == 0) n_matches = 0;
    __syncthreads();
    for (int i = threadIdx.x; i < len; i += blockDim.x) chunk[i] = tokens[base + i];
    __syncthreads();
    if (threadIdx.x < 32) {  // warp 0: ordered compaction with ballots keeps the summation order fixed
      const unsigned lane = threadIdx.x;
      int count = 0;
      for (int i = 0; i < len; i += 32) {
        const bool hit = i + static_cast<int>(lane) < len && chunk[i + lane] == v;
        const unsigned mask = __ballot_sync(0xffffffffu, hit);
        if (hit) matches[count + __popc(mask & ((1u << lane) - 1u))] = base + i + static_cast<int>(lane);
        count += __popc(mask);
      }
      if (lane == 0) n_matches = count;
    }
    __syncthreads();
    for (int m = 0; m < n_matches; ++m) {
      const float* g = dout + static_cast<size_t>(matches[m]) * D;
      for (int d = threadIdx.x; d < D; d += blockDim.x) acc[d] += g[d];
    }
    __syncthreads();
  }
  for (int d = threadIdx.x; d < D; d += blockDim.x) dwte[static_cast<size_t>(v) * D + d] += acc[d];
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
  embedding_backward_kernel<<<V, 256, D * sizeof(float), ctx.stream()>>>(dwte, dout, tokens, N, D);
  MM_LAUNCH_CHECK();
  if (dwpe) {
    position_backward_kernel<<<grid(ctx, static_cast<size_t>(T) * D), 256, 0, ctx.stream()>>>(dwpe, dout, N, T, D);
    MM_LAUNCH_CHECK();
  }
}

}  // namespace mm::cuda
