// Linear forward/backward through BLAS GEMMs.
#include "ops/linear.h"

#include "ops/gemm.h"

namespace mm::cpu {

template <class T>
void linear_forward(T* out, const T* inp, const T* w, const T* b, int N, int IC, int OC) {
  gemm(false, true, N, OC, IC, T(1), inp, IC, w, IC, T(0), out, OC);
  if (b) {
#pragma omp parallel for
    for (int n = 0; n < N; ++n)
      for (int o = 0; o < OC; ++o) out[static_cast<size_t>(n) * OC + o] += b[o];
  }
}

template <class T>
void linear_backward(T* dinp, T* dw, T* db, const T* dout, const T* inp, const T* w, int N, int IC, int OC) {
  if (dinp) gemm(false, false, N, IC, OC, T(1), dout, OC, w, IC, T(0), dinp, IC);  // dinp = dout @ w
  gemm(true, false, OC, IC, N, T(1), dout, OC, inp, IC, T(1), dw, IC);              // dw += dout^T @ inp
  if (db) {
#pragma omp parallel for
    for (int o = 0; o < OC; ++o) {
      T s = 0;
      for (int n = 0; n < N; ++n) s += dout[static_cast<size_t>(n) * OC + o];
      db[o] += s;
    }
  }
}

template void linear_forward<float>(float*, const float*, const float*, const float*, int, int, int);
template void linear_forward<double>(double*, const double*, const double*, const double*, int, int, int);
template void linear_backward<float>(float*, float*, float*, const float*, const float*, const float*, int, int, int);
template void linear_backward<double>(double*, double*, double*, const double*, const double*, const double*, int, int, int);

}  // namespace mm::cpu
