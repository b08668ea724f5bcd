// Linear layer as torch.nn.Linear: out[N,OC] = inp[N,IC] @ w[OC,IC]^T + b[OC].
#pragma once
#include <cstddef>

namespace mm::cpu {
template <class T> void linear_forward(T* out, const T* inp, const T* w, const T* b, int N, int IC, int OC);
template <class T> void linear_backward(T* dinp, T* dw, T* db, const T* dout, const T* inp, const T* w, int N, int IC, int OC);
}  // namespace mm::cpu
