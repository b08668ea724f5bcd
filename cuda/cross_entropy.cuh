// Fused softmax + cross-entropy + dlogits, one block per row (see src/ops/cross_entropy.h); dscale: one
// device float (null without dlogits), read by the kernel.
#pragma once
#include <cstdint>

#include "context.cuh"

namespace mm::cuda {
void cross_entropy(Context& ctx, float* losses, float* dlogits, const float* logits, const int32_t* targets, int N, int V, const float* dscale);
// The same on bf16 logits (fp32 arithmetic), writing bf16 gradients; dlogits may alias logits.
void cross_entropy(Context& ctx, float* losses, __nv_bfloat16* dlogits, const __nv_bfloat16* logits, const int32_t* targets, int N, int V, const float* dscale);
}  // namespace mm::cuda
