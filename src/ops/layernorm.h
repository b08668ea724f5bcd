// LayerNorm over the last dim D (eps 1e-5, affine), as torch.nn.LayerNorm.
#pragma once
#include <cstddef>

namespace mm::cpu {
template <class T> void layernorm_forward(T* out, T* mean, T* rstd, const T* x, const T* w, const T* b, int N, int D);
template <class T> void layernorm_backward(T* dx, T* dw, T* db, const T* dout, const T* x, const T* w, const T* mean, const T* rstd, int N, int D);
}  // namespace mm::cpu
