// Token (+ learned position) embedding; the backward is a deterministic gather (no atomics): one block
// per vocabulary row scans the batch's tokens in order.
#pragma once
#include <cstdint>

#include "context.cuh"

namespace mm::cuda {
void embedding_forward(Context& ctx, float* out, const int32_t* tokens, const float* wte, const float* wpe, int N, int T, int D);
void embedding_backward(Context& ctx, float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int N, int T, int D, int V);
}  // namespace mm::cuda
