// Pointwise ops: residual adds, exact GELU, SwiGLU (forward and backward side by side).
#pragma once
#include "context.cuh"

namespace mm::cuda {
void add_inplace(Context& ctx, float* dst, const float* src, size_t n);
void add(Context& ctx, float* out, const float* a, const float* b, size_t n);
void axpy(Context& ctx, float* y, const float* x, float alpha, size_t n);  // y += alpha * x
void gelu_forward(Context& ctx, float* out, const float* inp, size_t n);
void gelu_backward(Context& ctx, float* dinp, const float* dout, const float* inp, size_t n);
void swiglu_forward(Context& ctx, float* out, const float* inp, int N, int H);   // inp [N,2H] -> out [N,H]
void swiglu_backward(Context& ctx, float* dinp, const float* dout, const float* inp, int N, int H);
}  // namespace mm::cuda
