// Cross-entropy: row max and sum of exponentials in one pass (online rescaling), then the gradient.
#include "cross_entropy.cuh"
#include "element.cuh"
#include "reduce.cuh"

namespace mm::cuda {

namespace {
constexpr int kThreads = 256;

// One block per row; logits and dlogits fp32 or bf16 (dlogits may alias logits: every read of a row
// precedes the barrier before its gradient is written, element by element by the thread that read it).
template <class LogitT>
__global__ void cross_entropy_kernel(float* losses, LogitT* dlogits, const LogitT* logits, const int32_t* targets, int V, float dscale) {
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
    for (int v = threadIdx.x; v < V; v += blockDim.x) {
      const float p = __expf(as_float(r[v]) - log_sum);
      store_as(dr + v, (p - (v == target ? 1.f : 0.f)) * dscale);
    }
  }
}
}  // namespace

void cross_entropy(Context& ctx, float* losses, float* dlogits, const float* logits, const int32_t* targets, int N, int V, float dscale) {
  cross_entropy_kernel<<<N, kThreads, 0, ctx.stream()>>>(losses, dlogits, logits, targets, V, dscale);
  MM_LAUNCH_CHECK();
}

void cross_entropy(Context& ctx, float* losses, __nv_bfloat16* dlogits, const __nv_bfloat16* logits, const int32_t* targets, int N, int V, float dscale) {
  cross_entropy_kernel<<<N, kThreads, 0, ctx.stream()>>>(losses, dlogits, logits, targets, V, dscale);
  MM_LAUNCH_CHECK();
}

}  // namespace mm::cuda
