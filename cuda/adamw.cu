// AdamW kernel and a two-level sum of squares (fixed grid, partials summed on the host in double).
#include <vector>

#include "adamw.cuh"
#include "reduce.cuh"

namespace mm::cuda {

namespace {
constexpr int kBlocks = 512, kThreads = 256;

__global__ void sum_squares_kernel(float* partial, const float* x, size_t n) {
  float s = 0.f;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<size_t>(gridDim.x) * blockDim.x) s += x[i] * x[i];
  __shared__ float warps[kThreads / 32];
  s = warp_sum(s);
  if (threadIdx.x % 32 == 0) warps[threadIdx.x / 32] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    float t = 0.f;
    for (int w = 0; w < kThreads / 32; ++w) t += warps[w];
    partial[blockIdx.x] = t;
  }
}

// shadow (may be null): params rounded to bf16, written alongside
__global__ void adamw_kernel(float* params, __nv_bfloat16* shadow, const float* grads, float* m, float* v, size_t n, float lr, float beta1, float beta2,
                             float eps, float weight_decay, float bc1, float bc2, float grad_scale) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float g = grads[i] * grad_scale;
    const float mi = beta1 * m[i] + (1.f - beta1) * g;
    const float vi = beta2 * v[i] + (1.f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float p = params[i] - lr * (weight_decay * params[i] + (mi / bc1) / (sqrtf(vi / bc2) + eps));
    params[i] = p;
    if (shadow) shadow[i] = __float2bfloat16_rn(p);
  }
}
}  // namespace

double sum_squares(Context& ctx, const float* x, size_t n) {
  float* partial = ctx.scratch(kSlotAdamPartial, kBlocks);
  sum_squares_kernel<<<kBlocks, kThreads, 0, ctx.stream()>>>(partial, x, n);
  MM_LAUNCH_CHECK();
  std::vector<float> host(kBlocks);
  MM_CUDA_CHECK(cudaMemcpyAsync(host.data(), partial, kBlocks * sizeof(float), cudaMemcpyDeviceToHost, ctx.stream()));
  MM_CUDA_CHECK(cudaStreamSynchronize(ctx.stream()));
  double total = 0;
  for (float p : host) total += p;
  return total;
}

void adamw(Context& ctx, float* params, const float* grads, float* m, float* v, size_t n, float lr, float beta1, float beta2, float eps,
           float weight_decay, int step, float grad_scale) {
  const float bc1 = static_cast<float>(1.0 - std::pow(static_cast<double>(beta1), step));
  const float bc2 = static_cast<float>(1.0 - std::pow(static_cast<double>(beta2), step));
  const int blocks = static_cast<int>(std::min<size_t>(blocks_for(n, kThreads), static_cast<size_t>(ctx.sm_count()) * 16));
  __nv_bfloat16* shadow = ctx.precision() == Precision::Bf16 ? ctx.param_shadow(params, n) : nullptr;
  adamw_kernel<<<blocks, kThreads, 0, ctx.stream()>>>(params, shadow, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, bc1, bc2, grad_scale);
  MM_LAUNCH_CHECK();
}

}  // namespace mm::cuda
