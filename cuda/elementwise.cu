// Pointwise kernels, grid-stride.
#include "elementwise.cuh"

namespace mm::cuda {

namespace {
constexpr int kThreads = 256;

__global__ void add_inplace_kernel(float* dst, const float* src, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<size_t>(gridDim.x) * blockDim.x) dst[i] += src[i];
}
__global__ void add_kernel(float* out, const float* a, const float* b, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<size_t>(gridDim.x) * blockDim.x) out[i] = a[i] + b[i];
}
__global__ void axpy_kernel(float* y, const float* x, float alpha, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<size_t>(gridDim.x) * blockDim.x) y[i] += alpha * x[i];
}
__global__ void gelu_forward_kernel(float* out, const float* inp, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float x = inp[i];
    out[i] = 0.5f * x * (1.f + erff(x * 0.70710678118654752f));
  }
}
__global__ void gelu_backward_kernel(float* dinp, const float* dout, const float* inp, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float x = inp[i];
    const float cdf = 0.5f * (1.f + erff(x * 0.70710678118654752f));
    const float pdf = 0.39894228040143268f * __expf(-0.5f * x * x);
    dinp[i] = dout[i] * (cdf + x * pdf);
  }
}
__global__ void swiglu_forward_kernel(float* out, const float* inp, int N, int H) {
  const size_t total = static_cast<size_t>(N) * H;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < total; i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t n = i / H, h = i % H;
    const float g = inp[n * 2 * H + h], u = inp[n * 2 * H + H + h];
    out[i] = g / (1.f + __expf(-g)) * u;
  }
}
__global__ void swiglu_backward_kernel(float* dinp, const float* dout, const float* inp, int N, int H) {
  const size_t total = static_cast<size_t>(N) * H;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < total; i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t n = i / H, h = i % H;
    const float g = inp[n * 2 * H + h], u = inp[n * 2 * H + H + h], go = dout[i];
    const float s = 1.f / (1.f + __expf(-g));
    dinp[n * 2 * H + H + h] = go * g * s;
    dinp[n * 2 * H + h] = go * u * s * (1.f + g * (1.f - s));
  }
}

int grid(Context& ctx, size_t n) { return static_cast<int>(std::min<size_t>(blocks_for(n, kThreads), static_cast<size_t>(ctx.sm_count()) * 16)); }
}  // namespace

void add_inplace(Context& ctx, float* dst, const float* src, size_t n) {
  add_inplace_kernel<<<grid(ctx, n), kThreads, 0, ctx.stream()>>>(dst, src, n);
  MM_LAUNCH_CHECK();
}
void add(Context& ctx, float* out, const float* a, const float* b, size_t n) {
  add_kernel<<<grid(ctx, n), kThreads, 0, ctx.stream()>>>(out, a, b, n);
  MM_LAUNCH_CHECK();
}
void axpy(Context& ctx, float* y, const float* x, float alpha, size_t n) {
  axpy_kernel<<<grid(ctx, n), kThreads, 0, ctx.stream()>>>(y, x, alpha, n);
  MM_LAUNCH_CHECK();
}
void gelu_forward(Context& ctx, float* out, const float* inp, size_t n) {
  gelu_forward_kernel<<<grid(ctx, n), kThreads, 0, ctx.stream()>>>(out, inp, n);
  MM_LAUNCH_CHECK();
}
void gelu_backward(Context& ctx, float* dinp, const float* dout, const float* inp, size_t n) {
  gelu_backward_kernel<<<grid(ctx, n), kThreads, 0, ctx.stream()>>>(dinp, dout, inp, n);
  MM_LAUNCH_CHECK();
}
void swiglu_forward(Context& ctx, float* out, const float* inp, int N, int H) {
  swiglu_forward_kernel<<<grid(ctx, static_cast<size_t>(N) * H), kThreads, 0, ctx.stream()>>>(out, inp, N, H);
  MM_LAUNCH_CHECK();
}
void swiglu_backward(Context& ctx, float* dinp, const float* dout, const float* inp, int N, int H) {
  swiglu_backward_kernel<<<grid(ctx, static_cast<size_t>(N) * H), kThreads, 0, ctx.stream()>>>(dinp, dout, inp, N, H);
  MM_LAUNCH_CHECK();
}

}  // namespace mm::cuda
