// The feed-forward sublayer at precision bf16 (Ops::ffn_forward/ffn_backward): its hidden activations
// live in bf16 only. pre = x w1^T is a bf16-output GEMM (fp32 accumulation) kept without b1; the
// activation kernel adds b1 in fp32 and writes act in bf16, which is both the next GEMM's operand and
// what backward reads: no fp32 [N,F] arrays and no separate rounding passes. Backward's [N,F]
// gradients are bf16 too (the operands of the two GEMMs they feed). State: inp [N,D] (rounded once, for
// the first GEMM and for backward's dw1), pre [N,Fp] and act [N,F], bf16, packed into the float array
// the model allocates; backward does not read the fp32 inp.
#pragma once
#include "context.cuh"

namespace mm::cuda {

size_t ffn_state_floats(int N, int D, int F, FfnActivation act);
void ffn_forward(Context& ctx, float* out, float* state, const float* inp, const float* w1, const float* b1, const float* w2, const float* b2,
                 const float* skip, int N, int D, int F, FfnActivation act);
// dact, dpre: scratch holding at least N*F and N*Fp bf16 values (may be one array for GELU)
void ffn_backward(Context& ctx, float* dinp, float* dw1, float* db1, float* dw2, float* db2, const float* dout, const float* inp, const float* state,
                  const float* w1, const float* b1, const float* w2, int N, int D, int F, FfnActivation act, float* dact, float* dpre);

}  // namespace mm::cuda
