// Flash-style causal attention for precision bf16: online softmax, no [B,H,T,T] tensor. The kernels
// read q, k, v as bf16 rows qkv16 [B,T,3D] (the fp32 entry points round qkv into a scratch copy first,
// rotating q and k by RoPE in that pass); the products run on bf16 tensor cores (mma.sync m16n8k16)
// with fp32 accumulation, and the probabilities are rounded to bf16 before they multiply v (PyTorch's
// flash kernel does the same). Backward rotates dq and dk back in registers before storing them: no
// separate RoPE passes.
// Forward keeps only the row log-sum-exp lse [B,H,T] for backward. Backward is deterministic (no
// atomics): one kernel owns a block of keys and sums dK, dV over the queries; a second owns a block of
// queries and sums dQ over the keys (each recomputes the probabilities it needs).
#pragma once
#include "context.cuh"

namespace mm::cuda {

// Whether the fused kernels handle head size Dh (16, 32, 64 or 128); other sizes use attention.cu's
// GEMM + softmax path.
bool flash_attention_supports(int head_dim);

// out [B,T,D], lse [B,H,T] (natural log of each row's softmax denominator, in scaled-score units).
void flash_attention_forward(Context& ctx, float* out, float* lse, const float* qkv, int B, int T, int D, int H, bool rope);
// dqkv [B,T,3D] is overwritten; dout and out [B,T,D], lse from forward.
void flash_attention_backward(Context& ctx, float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse, int B,
                              int T, int D, int H, bool rope);

// The same on bf16 arrays (the self-attention sublayer keeps qkv and out in bf16): qkv16 is qkv rounded
// by round_qkv (q and k already rotated when rope); out and dqkv are written in bf16. Backward's dqkv is
// the gradient w.r.t. the unrotated qkv.
void round_qkv(Context& ctx, __nv_bfloat16* dst, const float* qkv, int B, int T, int D, int H, bool rope);
// Rotates q and k of a bf16 qkv [B,T,3D] in place (RoPE), in fp32, rounding once more.
void rotate_qk(Context& ctx, __nv_bfloat16* qkv16, int B, int T, int D, int H);
void flash_attention_forward(Context& ctx, __nv_bfloat16* out, float* lse, const __nv_bfloat16* qkv16, int B, int T, int D, int H);
void flash_attention_backward(Context& ctx, __nv_bfloat16* dqkv, const __nv_bfloat16* dout, const __nv_bfloat16* qkv16, const __nv_bfloat16* out,
                              const float* lse, int B, int T, int D, int H, bool rope);

}  // namespace mm::cuda
