// Activation functions shared by the fp32 pointwise kernels (elementwise.cu) and the bf16 feed-forward
// kernels (feed_forward.cu), so both compute the same values.
#pragma once
#include <cuda_runtime.h>

namespace mm::cuda {

// exact GELU x * Phi(x), and dout * GELU'(x)
__device__ __forceinline__ float gelu(float x) { return 0.5f * x * (1.f + erff(x * 0.70710678118654752f)); }
__device__ __forceinline__ float gelu_grad(float go, float x) {
  const float cdf = 0.5f * (1.f + erff(x * 0.70710678118654752f));
  const float pdf = 0.39894228040143268f * __expf(-0.5f * x * x);
  return go * (cdf + x * pdf);
}

// SwiGLU silu(g) * u, and its gradients for gate g and up u given dout go
__device__ __forceinline__ float swiglu(float g, float u) { return g / (1.f + __expf(-g)) * u; }
__device__ __forceinline__ void swiglu_grad(float go, float g, float u, float& dg, float& du) {
  const float s = 1.f / (1.f + __expf(-g));
  du = go * g * s;
  dg = go * u * s * (1.f + g * (1.f - s));
}

}  // namespace mm::cuda
