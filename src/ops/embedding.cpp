// Embedding lookup and its scatter-add backward (serial over rows: deterministic).
#include "ops/embedding.h"

namespace mm::cpu {

template <class T>
void embedding_forward(T* out, const int32_t* tokens, const T* wte, const T* wpe, int N, int T_ctx, int D) {
#pragma omp parallel for
  for (int n = 0; n < N; ++n) {
    const T* row = wte + static_cast<size_t>(tokens[n]) * D;
    const T* pos = wpe ? wpe + static_cast<size_t>(n % T_ctx) * D : nullptr;
    T* o = out + static_cast<size_t>(n) * D;
    for (int d = 0; d < D; ++d) o[d] = row[d] + (pos ? pos[d] : T(0));
  }
}

template <class T>
void embedding_backward(T* dwte, T* dwpe, const T* dout, const int32_t* tokens, int N, int T_ctx, int D) {
  for (int n = 0; n < N; ++n) {
    T* row = dwte + static_cast<size_t>(tokens[n]) * D;
    const T* g = dout + static_cast<size_t>(n) * D;
    for (int d = 0; d < D; ++d) row[d] += g[d];
    if (dwpe) {
      T* pos = dwpe + static_cast<size_t>(n % T_ctx) * D;
      for (int d = 0; d < D; ++d) pos[d] += g[d];
    }
  }
}

template void embedding_forward<float>(float*, const int32_t*, const float*, const float*, int, int, int);
template void embedding_forward<double>(double*, const int32_t*, const double*, const double*, int, int, int);
template void embedding_backward<float>(float*, float*, const float*, const int32_t*, int, int, int);
template void embedding_backward<double>(double*, double*, const double*, const int32_t*, int, int, int);

}  // namespace mm::cpu
