// Masked token mixing on the GPU (see src/ops/masked_mix.h for the maths): strided-batched GEMMs over
// the batch with a tril copy of each group's [To,Ti] matrix; dw is reduced over the batch in a fixed
// order and only its lower triangle is accumulated.
#pragma once
#include "context.cuh"

namespace mm::cuda {
void mix_forward(Context& ctx, float* out, const float* inp, const float* w, const float* c, int B, int Ti, int To, int D, int G, bool causal);
void mix_backward(Context& ctx, float* dinp, float* dw, float* dc, const float* dout, const float* inp, const float* w, int B, int Ti, int To, int D, int G, bool causal);

// The flat mixer's token-mixing sublayer at precision bf16 (Ops::mix_sublayer_*): the pre-norm writes h
// in bf16 straight into the state (x rounded there without a norm), which both mixing GEMMs read as it
// is; the matrix is masked and rounded in one pass; the bias and the residual are added in one pass;
// backward's dh leaves its GEMM in bf16 for the norm's backward. State: h [B,T,D] bf16.
size_t mix_sublayer_state_floats(int B, int T, int D);
void mix_sublayer_forward(Context& ctx, float* out, float* state, const float* x, const PreNorm<float>& norm, const float* w, const float* c,
                          const float* skip, int B, int T, int D, bool causal);
// dh: scratch for N*D bf16 values (with a norm)
void mix_sublayer_backward(Context& ctx, float* dinp, float* dw, float* dc, const float* dout, const float* x, const float* state,
                           const PreNorm<float>& norm, const float* w, int B, int T, int D, bool causal, float* dh);
}  // namespace mm::cuda
