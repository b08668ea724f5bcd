// The feed-forward sublayer at precision bf16 (Ops::ffn_forward/ffn_backward): its hidden activations
// live in bf16 only. pre = x w1^T is a bf16-output GEMM (fp32 accumulation) kept without b1; the
// activation kernel adds b1 in fp32 and writes act in bf16, the next GEMM's operand;
// backward reads no fp32 [N,F] arrays and there are no separate rounding passes. Backward's [N,F]
// gradients are bf16 too (the operands of the two GEMMs they feed). State: inp [N,D] (rounded once, for
// the first GEMM and for backward's dw1; with a pre-norm the norm writes it there directly) and pre
// [N,Fp], bf16, packed into the float array the model allocates. act [N,F] is not kept: it lives in one
// scratch array for all layers, and the activation's backward kernel, which reads pre anyway, writes it
// again for dw2 (one more [N,F] bf16 write per layer, for N*F*2 bytes less state per layer). Backward
// reads no fp32 input except for the norm's backward, which takes a bf16 dh.
#pragma once
#include "context.cuh"

namespace mm::cuda {

size_t ffn_state_floats(int N, int D, int F, FfnActivation act);
// x: the sublayer's input before `norm` (Ops::ffn_forward); h = norm(x) or x is what the state keeps
void ffn_forward(Context& ctx, float* out, float* state, const float* x, const PreNorm<float>& norm, const float* w1, const float* b1, const float* w2,
                 const float* b2, const float* skip, int N, int D, int F, FfnActivation act);
// dact, dpre: scratch holding at least N*F and N*Fp bf16 values (may be one array for GELU without a
// norm); x is read only by the norm's backward (may be null without one)
void ffn_backward(Context& ctx, float* dinp, float* dw1, float* db1, float* dw2, float* db2, const float* dout, const float* x, const float* state,
                  const PreNorm<float>& norm, const float* w1, const float* b1, const float* w2, int N, int D, int F, FfnActivation act, float* dact,
                  float* dpre);

}  // namespace mm::cuda
