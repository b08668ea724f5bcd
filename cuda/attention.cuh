// Causal multi-head attention and RoPE on the GPU. Attention: q/k/v are permuted to [B,H,T,Dh], scores
// and outputs are strided-batched GEMMs, softmax (forward) and its backward are row kernels; probs
// [B,H,T,T] are kept for backward. RoPE: HF rotate_half convention, in place on q and k.
#pragma once
#include "context.cuh"

namespace mm::cuda {
void rope_forward(Context& ctx, float* qkv, int B, int T, int D, int H);
void rope_backward(Context& ctx, float* dqkv, int B, int T, int D, int H);
void attention_forward(Context& ctx, float* out, float* probs, const float* qkv, int B, int T, int D, int H);
void attention_backward(Context& ctx, float* dqkv, const float* dout, const float* qkv, const float* probs, int B, int T, int D, int H);
}  // namespace mm::cuda
