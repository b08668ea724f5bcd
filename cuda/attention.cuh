// Causal multi-head attention and RoPE on the GPU. Attention at precision bf16 (head sizes 16-128) runs
// the fused flash-style kernels of flash_attention.cu (RoPE applied as q and k are loaded) and keeps the
// row log-sum-exp [B,H,T]. Otherwise q/k/v (rotated in a scratch copy when asked) are permuted to
// [B,H,T,Dh], scores and outputs are strided-batched GEMMs, softmax (forward) and its backward are row
// kernels, and the probabilities [B,H,T,T] are kept for backward.
// RoPE: HF rotate_half convention, in place on q and k.
#pragma once
#include "context.cuh"

namespace mm::cuda {
void rope_forward(Context& ctx, float* qkv, int B, int T, int D, int H);
void rope_backward(Context& ctx, float* dqkv, int B, int T, int D, int H);
// (cos, sin) of t * 10000^(-2i/Dh) at [t, i], i < Dh/2, in scratch; built on the first call for (T, Dh)
const float2* rope_table(Context& ctx, int T, int Dh);
bool attention_is_fused(const Context& ctx, int D, int H);
// state: lse [B,H,T] when attention_is_fused, else probs [B,H,T,T]
void attention_forward(Context& ctx, float* out, float* state, const float* qkv, int B, int T, int D, int H, bool rope);
void attention_backward(Context& ctx, float* dqkv, const float* dout, const float* qkv, const float* out, const float* state, int B, int T, int D,
                        int H, bool rope);
}  // namespace mm::cuda
