// Cross-entropy: row max and sum of exponentials in one pass (online rescaling), then the gradient;
// bf16 rows of up to 8192 values are held in registers instead (read once).
#include "cross_entropy.cuh"
#include "element.cuh"
#include "reduce.cuh"

namespace mm::cuda {

namespace {
constexpr int kThreads = 256;

// One block per row; logits and dlogits fp32 or bf16 (dlogits may alias logits: every read of a row
// precedes the barrier before its gradient is written, element by element by the thread that read it).
template <class LogitT>
__global__ void cross_entropy_kernel(float* losses, LogitT* dlogits, const LogitT* logits, const int32_t* targets, int V, const float* dscale_at) {
  const int row = blockIdx.x;
  const LogitT* r = logits + static_cast<size_t>(row) * V;
  LogitT* dr = dlogits ? dlogits + static_cast<size_t>(row) * V : nullptr;
  const int target = targets[row];
  if (target < 0) {
    if (threadIdx.x == 0) losses[row] = 0.f;
    if (dr)
      for (int v = threadIdx.x; v < V; v += blockDim.x) store_as(dr + v, 0.f);
    return;
  }
  float m = -INFINITY, s = 0.f;
  for (int v = threadIdx.x; v < V; v += blockDim.x) {
    const float x = as_float(r[v]);
    if (x > m) {
      s = s * __expf(m - x) + 1.f;
      m = x;
    } else {
      s += __expf(x - m);
    }
  }
  __shared__ float shared_m[kThreads / 32], shared_s[kThreads / 32];
  // combine (m, s) pairs: first within warps, then across warps
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float om = __shfl_xor_sync(0xffffffffu, m, offset), os = __shfl_xor_sync(0xffffffffu, s, offset);
    const float nm = fmaxf(m, om);
    s = (m == -INFINITY ? 0.f : s * __expf(m - nm)) + (om == -INFINITY ? 0.f : os * __expf(om - nm));
    m = nm;
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) { shared_m[warp] = m; shared_s[warp] = s; }
  __syncthreads();
  float gm = -INFINITY;
  for (int w = 0; w < kThreads / 32; ++w) gm = fmaxf(gm, shared_m[w]);
  float gs = 0.f;
  for (int w = 0; w < kThreads / 32; ++w) gs += shared_m[w] == -INFINITY ? 0.f : shared_s[w] * __expf(shared_m[w] - gm);
  const float log_sum = logf(gs) + gm;
  const float target_logit = as_float(r[target]);
  __syncthreads();
  if (threadIdx.x == 0) losses[row] = log_sum - target_logit;
  if (dr) {
    const float dscale = *dscale_at;
    for (int v = threadIdx.x; v < V; v += blockDim.x) {
      const float p = __expf(as_float(r[v]) - log_sum);
      store_as(dr + v, (p - (v == target ? 1.f : 0.f)) * dscale);
    }
  }
}

// bf16 rows held in registers: each thread reads K 16-byte vectors (8 values) of the row once, so the
// row is read from memory once and each exponential is taken once (the kernel above reads the row twice
// with 2-byte loads and exponentiates every value twice). One block per row, V % 8 == 0, V <= 8 K
// kThreads, 16-byte aligned rows; dlogits may alias logits (all reads precede the second barrier).
template <int K>
__global__ void cross_entropy_bf16_rows_in_registers(float* losses, __nv_bfloat16* dlogits, const __nv_bfloat16* logits, const int32_t* targets, int V,
                                                     const float* dscale_at) {
  const int row = blockIdx.x, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const __nv_bfloat16* r = logits + static_cast<size_t>(row) * V;
  __nv_bfloat16* dr = dlogits ? dlogits + static_cast<size_t>(row) * V : nullptr;
  const int target = targets[row];  // the same for the whole block
  float x[K][8];
  float m = -INFINITY;
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const int col = 8 * (threadIdx.x + k * kThreads);
    if (col < V) {
      const uint4 raw = *reinterpret_cast<const uint4*>(r + col);
      const auto* pairs = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float2 f = __bfloat1622float2(pairs[i]);
        x[k][2 * i] = f.x;
        x[k][2 * i + 1] = f.y;
      }
#pragma unroll
      for (int j = 0; j < 8; ++j) m = fmaxf(m, x[k][j]);
    } else {
#pragma unroll
      for (int j = 0; j < 8; ++j) x[k][j] = -INFINITY;
    }
  }
  __shared__ float shared_m[kThreads / 32], shared_s[kThreads / 32];
  m = warp_max(m);
  if (lane == 0) shared_m[warp] = m;
  __syncthreads();
  float gm = -INFINITY;
  for (int w = 0; w < kThreads / 32; ++w) gm = fmaxf(gm, shared_m[w]);
  float s = 0.f;
#pragma unroll
  for (int k = 0; k < K; ++k)
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      x[k][j] = __expf(x[k][j] - gm);  // 0 for the padding
      s += x[k][j];
    }
  s = warp_sum(s);
  if (lane == 0) shared_s[warp] = s;
  const float target_logit = target >= 0 && threadIdx.x == 0 ? __bfloat162float(r[target]) : 0.f;
  __syncthreads();  // every read of the row is done: the gradient may overwrite it
  float gs = 0.f;
  for (int w = 0; w < kThreads / 32; ++w) gs += shared_s[w];
  if (threadIdx.x == 0) losses[row] = target >= 0 ? logf(gs) + gm - target_logit : 0.f;
  if (!dr) return;
  const float dscale = *dscale_at;
  const float scale = target >= 0 ? dscale / gs : 0.f;  // an ignored target has no gradient
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const int col = 8 * (threadIdx.x + k * kThreads);
    if (col >= V) break;
    uint4 raw;
    auto* pairs = reinterpret_cast<__nv_bfloat162*>(&raw);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float g0 = x[k][2 * i] * scale - (col + 2 * i == target ? dscale : 0.f);
      const float g1 = x[k][2 * i + 1] * scale - (col + 2 * i + 1 == target ? dscale : 0.f);
      pairs[i] = __floats2bfloat162_rn(g0, g1);
    }
    *reinterpret_cast<uint4*>(dr + col) = raw;
  }
}

template <int K>
void launch_rows_in_registers(Context& ctx, float* losses, __nv_bfloat16* dlogits, const __nv_bfloat16* logits, const int32_t* targets, int N, int V,
                              const float* dscale) {
  cross_entropy_bf16_rows_in_registers<K><<<N, kThreads, 0, ctx.stream()>>>(losses, dlogits, logits, targets, V, dscale);
  MM_LAUNCH_CHECK();
}
}  // namespace

void cross_entropy(Context& ctx, float* losses, float* dlogits, const float* logits, const int32_t* targets, int N, int V, const float* dscale) {
  cross_entropy_kernel<<<N, kThreads, 0, ctx.stream()>>>(losses, dlogits, logits, targets, V, dscale);
  MM_LAUNCH_CHECK();
}

void cross_entropy(Context& ctx, float* losses, __nv_bfloat16* dlogits, const __nv_bfloat16* logits, const int32_t* targets, int N, int V, const float* dscale) {
  const bool vectors = V % 8 == 0 && reinterpret_cast<uintptr_t>(logits) % 16 == 0 && reinterpret_cast<uintptr_t>(dlogits) % 16 == 0;
  const int per_thread = (V + 8 * kThreads - 1) / (8 * kThreads);  // 16-byte vectors per thread
  if (vectors && per_thread <= 1) return launch_rows_in_registers<1>(ctx, losses, dlogits, logits, targets, N, V, dscale);
  if (vectors && per_thread <= 2) return launch_rows_in_registers<2>(ctx, losses, dlogits, logits, targets, N, V, dscale);
  if (vectors && per_thread <= 4) return launch_rows_in_registers<4>(ctx, losses, dlogits, logits, targets, N, V, dscale);
  cross_entropy_kernel<<<N, kThreads, 0, ctx.stream()>>>(losses, dlogits, logits, targets, V, dscale);
  MM_LAUNCH_CHECK();
}

}  // namespace mm::cuda
