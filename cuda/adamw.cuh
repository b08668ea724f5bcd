// AdamW over the flat parameter buffer, and the deterministic sum of squares for the global grad norm.
#pragma once
#include "context.cuh"

namespace mm::cuda {
double sum_squares(Context& ctx, const float* x, size_t n);
void adamw(Context& ctx, float* params, const float* grads, float* m, float* v, size_t n, float lr, float beta1, float beta2, float eps,
           float weight_decay, int step, float grad_scale);
}  // namespace mm::cuda
