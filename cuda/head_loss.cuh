// The language-model head and loss of a training step at precision bf16 (Ops::head_loss_forward/backward):
// the logits leave their GEMM in bf16 (as under autocast), the cross-entropy reads them and overwrites
// them with bf16 gradients, which both backward GEMMs take as they are: no fp32 [N,V] array is written
// or rounded. dlogits: the model's [N,V] float array, of which the first half holds the bf16 values.
#pragma once
#include <cstdint>

#include "context.cuh"

namespace mm::cuda {
void head_loss_forward(Context& ctx, float* losses, float* dlogits, const float* top, const float* w, const int32_t* targets, int N, int D, int V,
                       const float* dscale);
void head_loss_backward(Context& ctx, float* dtop, float* dw, const float* dlogits, const float* top, const float* w, int N, int D, int V);
}  // namespace mm::cuda
