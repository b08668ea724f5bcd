// Token (+ learned position) embedding. out[N,D] = wte[tokens[n]] + wpe[n % T]
#pragma once
#include <cstddef>
#include <cstdint>

namespace mm::cpu {
template <class T> void embedding_forward(T* out, const int32_t* tokens, const T* wte, const T* wpe, int N, int T_ctx, int D);
template <class T> void embedding_backward(T* dwte, T* dwpe, const T* dout, const int32_t* tokens, int N, int T_ctx, int D);
}  // namespace mm::cpu
