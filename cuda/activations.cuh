// Activation functions shared by the fp32 pointwise kernels (elementwise.cu), the bf16 feed-forward
// kernels (feed_forward.cu) and the fused GEMM (gemm_gelu.cu), so all compute the same values. Host
// code sees the same arithmetic (tests check the approximation against std::erfc).
#pragma once
#include <cuda_runtime.h>

#include <cmath>

namespace mm::cuda {

namespace detail {
__host__ __device__ __forceinline__ float reciprocal(float x) {
#ifdef __CUDA_ARCH__
  return __fdividef(1.f, x);
#else
  return 1.f / x;
#endif
}
__host__ __device__ __forceinline__ float exp_fast(float x) {
#ifdef __CUDA_ARCH__
  return __expf(x);
#else
  return std::exp(x);
#endif
}
}  // namespace detail

// Phi(x), the standard normal CDF, from a Chebyshev fit of erfc (Numerical Recipes' erfcc, fractional
// error below 1.2e-7): one reciprocal, nine FMAs and one exponential. 0.5 (1 + erff(x / sqrt 2)) costs
// more (PTX of GELU and its gradient together: 46 instructions against 36; the GELU kernels are bound
// by instruction issue as much as by memory) and cancels below x = -4 (relative error 5e-4 at -4, all
// of it beyond -5.5); this stays within 6e-6 relative to -6 and 2e-7 absolute everywhere.
__host__ __device__ __forceinline__ float normal_cdf(float x) {
  const float z = fabsf(x) * 0.70710678118654752f;
  const float t = detail::reciprocal(fmaf(0.5f, z, 1.f));
  float p = 0.17087277f;
  p = fmaf(p, t, -0.82215223f);
  p = fmaf(p, t, 1.48851587f);
  p = fmaf(p, t, -1.13520398f);
  p = fmaf(p, t, 0.27886807f);
  p = fmaf(p, t, -0.18628806f);
  p = fmaf(p, t, 0.09678418f);
  p = fmaf(p, t, 0.37409196f);
  p = fmaf(p, t, 1.00002368f);
  p = fmaf(p, t, -1.26551223f);
  const float half_erfc = 0.5f * t * detail::exp_fast(fmaf(-z, z, p));  // 0.5 erfc(|x| / sqrt 2)
  return x >= 0.f ? 1.f - half_erfc : half_erfc;
}

// exact GELU x * Phi(x), and dout * GELU'(x)
__host__ __device__ __forceinline__ float gelu(float x) { return x * normal_cdf(x); }
__host__ __device__ __forceinline__ float gelu_grad(float go, float x) {
  const float pdf = 0.39894228040143268f * detail::exp_fast(-0.5f * x * x);
  return go * (normal_cdf(x) + x * pdf);
}

// SwiGLU silu(g) * u, and its gradients for gate g and up u given dout go
__device__ __forceinline__ float swiglu(float g, float u) { return g / (1.f + __expf(-g)) * u; }
__device__ __forceinline__ void swiglu_grad(float go, float g, float u, float& dg, float& du) {
  const float s = 1.f / (1.f + __expf(-g));
  du = go * g * s;
  dg = go * u * s * (1.f + g * (1.f - s));
}

}  // namespace mm::cuda
