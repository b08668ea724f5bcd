// Distance losses for input inversion (see src/ops/distance.h), one warp per row.
#pragma once
#include "context.cuh"

namespace mm::cuda {
void distance_loss(Context& ctx, float* losses, float* dout, const float* out, const float* target, const float* weights, int N, int D, int kind);
}  // namespace mm::cuda
