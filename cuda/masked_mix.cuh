// Masked token mixing on the GPU (see src/ops/masked_mix.h for the maths): strided-batched GEMMs over
// the batch with a tril copy of each group's [To,Ti] matrix; dw is reduced over the batch in a fixed
// order and only its lower triangle is accumulated.
#pragma once
#include "context.cuh"

namespace mm::cuda {
void mix_forward(Context& ctx, float* out, const float* inp, const float* w, const float* c, int B, int Ti, int To, int D, int G, bool causal);
void mix_backward(Context& ctx, float* dinp, float* dw, float* dc, const float* dout, const float* inp, const float* w, int B, int Ti, int To, int D, int G, bool causal);
}  // namespace mm::cuda
