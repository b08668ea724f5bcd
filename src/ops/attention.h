// Causal multi-head scaled dot-product attention: qkv [B,T,3D] (q | k | v, heads contiguous inside
// each) -> out [B,T,D]; probs [B,H,T,T] (zero above the diagonal) kept for backward.
#pragma once
#include <cstddef>

namespace mm::cpu {
template <class T> void attention_forward(T* out, T* probs, const T* qkv, int B, int T_ctx, int D, int H);
template <class T> void attention_backward(T* dqkv, const T* dout, const T* qkv, const T* probs, int B, int T_ctx, int D, int H);
}  // namespace mm::cpu
