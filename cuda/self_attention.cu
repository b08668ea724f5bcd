// Self-attention sublayer at precision bf16 (see self_attention.cuh): the GEMM sequence around the
// flash kernels, forward and backward side by side.
#include "self_attention.cuh"

#include "attention.cuh"
#include "flash_attention.cuh"
#include "linear.cuh"
#include "norms.cuh"
#include "reduce.cuh"

namespace mm::cuda {

namespace {
using bf16 = __nv_bfloat16;

// Where the parts of the state start (bf16 arrays first; N*5D bf16 values end on a float boundary, D
// being even).
struct StateView {
  bf16* qkv;   // [N,3D]
  bf16* a;     // [N,D]
  bf16* x;     // [N,D] the input h (normalized when a pre-norm is given)
  float* lse;  // [B,H,T]
  StateView(const float* state, int N, int D)
      : qkv(reinterpret_cast<bf16*>(const_cast<float*>(state))),
        a(qkv + static_cast<size_t>(N) * 3 * D),
        x(a + static_cast<size_t>(N) * D),
        lse(const_cast<float*>(state) + static_cast<size_t>(N) * 5 * D / 2) {}
};
}  // namespace

size_t self_attention_state_floats(int B, int T, int D, int H) { return static_cast<size_t>(B) * T * 5 * D / 2 + static_cast<size_t>(B) * H * T; }

void self_attention_forward(Context& ctx, float* out, float* state, const float* x, const PreNorm<float>& norm, const float* wqkv, const float* bqkv,
                            const float* wo, const float* bo, const float* skip, int B, int T, int D, int H, bool rope) {
  const int N = B * T;
  const StateView s(state, N, D);
  prenorm_forward(ctx, norm, s.x, x, N, D);  // h (or x) in bf16, straight into the state
  const bf16* wqkv16 = to_bf16(ctx, kSlotCastA, wqkv, static_cast<size_t>(3) * D * D);
  if (bqkv) {  // the bias in the GEMM's fp32 epilogue, then q, k (rotated) and v rounded once
    float* qkv = ctx.scratch(kSlotQkvRows, static_cast<size_t>(N) * 3 * D);
    linear_forward(ctx, qkv, GemmOperand{nullptr, s.x}, GemmOperand{nullptr, wqkv16}, bqkv, nullptr, N, D, 3 * D);
    round_qkv(ctx, s.qkv, qkv, B, T, D, H, rope);
  } else {  // straight into bf16; RoPE then rotates q and k in place
    gemm_bf16(ctx, false, true, N, 3 * D, D, s.x, D, wqkv16, D, s.qkv, 3 * D);
    if (rope) rotate_qk(ctx, s.qkv, B, T, D, H);
  }
  flash_attention_forward(ctx, s.a, s.lse, s.qkv, B, T, D, H);
  if (!out) return;  // recompute: the state is all that was asked for
  linear_forward(ctx, out, GemmOperand{nullptr, s.a}, gemm_operand(ctx, kSlotCastA, wo, static_cast<size_t>(D) * D), bo, skip, N, D, D);
}

void self_attention_backward(Context& ctx, float* dinp, float* dwqkv, float* dbqkv, float* dwo, float* dbo, const float* dout, const float* x,
                             const float* state, const PreNorm<float>& norm, const float* wqkv, const float* wo, int B, int T, int D, int H, bool rope,
                             float* da, float* dqkv) {
  const int N = B * T;
  const StateView s(state, N, D);
  bf16* da16 = reinterpret_cast<bf16*>(da);      // [N,D]
  bf16* dqkv16 = reinterpret_cast<bf16*>(dqkv);  // [N,3D]
  const bf16* dout16 = to_bf16(ctx, kSlotCastC, dout, static_cast<size_t>(N) * D);
  const bf16* wo16 = to_bf16(ctx, kSlotCastA, wo, static_cast<size_t>(D) * D);
  gemm_bf16(ctx, false, false, N, D, D, dout16, D, wo16, D, da16, D);                       // da = dout wo
  gemm_bf16(ctx, true, false, D, D, N, 1.f, dout16, D, 0, s.a, D, 0, 1.f, dwo, D, 0);       // dwo += dout^T a
  if (dbo) column_sum_accumulate(ctx, dbo, dout, N, D);
  flash_attention_backward(ctx, dqkv16, da16, s.qkv, s.a, s.lse, B, T, D, H, rope);         // dout (and da) are consumed
  if (dbqkv) column_sum_accumulate(ctx, dbqkv, dqkv16, N, 3 * D);
  const bf16* wqkv16 = to_bf16(ctx, kSlotCastA, wqkv, static_cast<size_t>(3) * D * D);
  gemm_bf16(ctx, true, false, 3 * D, D, N, 1.f, dqkv16, 3 * D, 0, s.x, D, 0, 1.f, dwqkv, D, 0);  // dwqkv += dqkv^T h
  if (norm.on()) {  // dh = dqkv wqkv in bf16 (into da, consumed), then the norm's backward
    gemm_bf16(ctx, false, false, N, D, 3 * D, dqkv16, 3 * D, wqkv16, D, da16, D);
    prenorm_backward(ctx, norm, dinp, da16, x, N, D);
  } else {
    gemm_bf16(ctx, false, false, N, D, 3 * D, 1.f, dqkv16, 3 * D, 0, wqkv16, D, 0, 0.f, dinp, D, 0);  // dinp = dqkv wqkv
  }
}

}  // namespace mm::cuda
