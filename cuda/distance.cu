// Distance-loss kernel.
#include "distance.cuh"
#include "reduce.cuh"

namespace mm::cuda {

namespace {
__global__ void distance_kernel(float* losses, float* dout, const float* out, const float* target, const float* weights, int N, int D, int kind) {
  const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= N) return;
  const float* o = out + static_cast<size_t>(row) * D;
  const float* t = target + static_cast<size_t>(row) * D;
  float* g = dout + static_cast<size_t>(row) * D;
  const float w = weights[row];
  float loss = 0.f;
  if (kind == 2) {
    float ot = 0.f, oo = 0.f, tt = 0.f;
    for (int d = lane; d < D; d += 32) {
      ot += o[d] * t[d];
      oo += o[d] * o[d];
      tt += t[d] * t[d];
    }
    ot = warp_sum(ot);
    oo = warp_sum(oo);
    tt = warp_sum(tt);
    const float no = sqrtf(oo) + 1e-12f, nt = sqrtf(tt) + 1e-12f, cosine = ot / (no * nt);
    loss = 1.f - cosine;
    for (int d = lane; d < D; d += 32) g[d] = -w * (t[d] / (no * nt) - cosine * o[d] / (no * no));
  } else {
    for (int d = lane; d < D; d += 32) {
      const float diff = o[d] - t[d];
      loss += kind == 0 ? fabsf(diff) : diff * diff;
      g[d] = kind == 0 ? w * static_cast<float>((diff > 0.f) - (diff < 0.f)) : 2.f * w * diff;
    }
    loss = warp_sum(loss);
  }
  if (lane == 0) losses[row] = w * loss;
}
}  // namespace

void distance_loss(Context& ctx, float* losses, float* dout, const float* out, const float* target, const float* weights, int N, int D, int kind) {
  distance_kernel<<<blocks_for(static_cast<size_t>(N) * 32, 256), 256, 0, ctx.stream()>>>(losses, dout, out, target, weights, N, D, kind);
  MM_LAUNCH_CHECK();
}

}  // namespace mm::cuda
