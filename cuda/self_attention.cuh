// The self-attention sublayer at precision bf16 (Ops::self_attention_forward/backward) for head sizes
// the flash kernels take (attention_is_fused). What backward needs lives in bf16: the input (rounded
// once, for the qkv GEMM and backward's dwqkv), qkv (q and k rotated when rope) and the attention
// output a, plus each row's log-sum-exp; with a pre-norm the norm writes its bf16 output straight into
// the state and its backward takes a bf16 dh. Without a qkv bias the projection is a bf16-output GEMM and
// RoPE rotates q and k in place (rounded twice, as autocast does); with one, the fp32 projection is a
// transient scratch rounded once after the bias (and RoPE). Every hand-off between the GEMMs and the
// flash kernels is bf16: a feeds the output projection as it is, backward's da comes out of a
// bf16-output GEMM, and the flash kernels write dqkv in bf16 for the two qkv GEMMs (each rounded where
// the composed ops would round it as a GEMM operand). State: qkv [N,3D], a [N,D], inp [N,D] (bf16),
// then lse [B,H,T].
#pragma once
#include "context.cuh"

namespace mm::cuda {

size_t self_attention_state_floats(int B, int T, int D, int H);
// x: the sublayer's input before `norm` (Ops::self_attention_forward)
void self_attention_forward(Context& ctx, float* out, float* state, const float* x, const PreNorm<float>& norm, const float* wqkv, const float* bqkv,
                            const float* wo, const float* bo, const float* skip, int B, int T, int D, int H, bool rope);
// da, dqkv: scratch for N*D and N*3D bf16 values; x is read only by the norm's backward (may be null without one)
void self_attention_backward(Context& ctx, float* dinp, float* dwqkv, float* dbqkv, float* dwo, float* dbo, const float* dout, const float* x,
                             const float* state, const PreNorm<float>& norm, const float* wqkv, const float* wo, int B, int T, int D, int H, bool rope,
                             float* da, float* dqkv);

}  // namespace mm::cuda
