// Masked token mixing: the mask is applied inside the op (a tril copy of w feeds the GEMMs and only the
// lower triangle of dw is accumulated), so whatever sits in w's upper triangle can never leak the future.
#include "ops/masked_mix.h"

#include <vector>

#include "ops/gemm.h"

namespace mm::cpu {

namespace {
// The matrix the op uses: tril(w) when causal, w itself for bidirectional mixing (retrieval model).
template <class T>
std::vector<T> lower_triangle(const T* w, int To, int Ti, bool causal) {
  std::vector<T> masked(static_cast<size_t>(To) * Ti, T(0));
  for (int i = 0; i < To; ++i)
    for (int j = 0; j < Ti && (!causal || j <= i); ++j) masked[static_cast<size_t>(i) * Ti + j] = w[static_cast<size_t>(i) * Ti + j];
  return masked;
}
}  // namespace

template <class T>
void mix_forward(T* out, const T* inp, const T* w, const T* c, int B, int Ti, int To, int D, int G, bool causal) {
  const int Dg = D / G;
  for (int g = 0; g < G; ++g) {
    std::vector<T> masked = lower_triangle(w + static_cast<size_t>(g) * To * Ti, To, Ti, causal);
    for (int b = 0; b < B; ++b)
      gemm(false, false, To, Dg, Ti, T(1), masked.data(), Ti, inp + static_cast<size_t>(b) * Ti * D + g * Dg, D, T(0),
           out + static_cast<size_t>(b) * To * D + g * Dg, D);
  }
#pragma omp parallel for collapse(2)
  for (int b = 0; b < B; ++b)
    for (int i = 0; i < To; ++i)
      for (int g = 0; g < G; ++g) {
        T* row = out + (static_cast<size_t>(b) * To + i) * D + g * Dg;
        const T bias = c[static_cast<size_t>(g) * To + i];
        for (int f = 0; f < Dg; ++f) row[f] += bias;
      }
}

template <class T>
void mix_backward(T* dinp, T* dw, T* dc, const T* dout, const T* inp, const T* w, int B, int Ti, int To, int D, int G, bool causal) {
  const int Dg = D / G;
  for (int g = 0; g < G; ++g) {
    std::vector<T> masked = lower_triangle(w + static_cast<size_t>(g) * To * Ti, To, Ti, causal);
    std::vector<T> dw_full(static_cast<size_t>(To) * Ti, T(0));
    for (int b = 0; b < B; ++b) {
      const T* dout_b = dout + static_cast<size_t>(b) * To * D + g * Dg;
      const T* inp_b = inp + static_cast<size_t>(b) * Ti * D + g * Dg;
      // dinp_b [Ti,Dg] = tril(w)^T @ dout_b ; dw_full [To,Ti] += dout_b @ inp_b^T
      gemm(true, false, Ti, Dg, To, T(1), masked.data(), Ti, dout_b, D, T(0), dinp + static_cast<size_t>(b) * Ti * D + g * Dg, D);
      gemm(false, true, To, Ti, Dg, T(1), dout_b, D, inp_b, D, T(1), dw_full.data(), Ti);
    }
    T* dw_g = dw + static_cast<size_t>(g) * To * Ti;
    for (int i = 0; i < To; ++i)
      for (int j = 0; j < Ti && (!causal || j <= i); ++j) dw_g[static_cast<size_t>(i) * Ti + j] += dw_full[static_cast<size_t>(i) * Ti + j];
#pragma omp parallel for
    for (int i = 0; i < To; ++i) {
      T s = 0;
      for (int b = 0; b < B; ++b) {
        const T* row = dout + (static_cast<size_t>(b) * To + i) * D + g * Dg;
        for (int f = 0; f < Dg; ++f) s += row[f];
      }
      dc[static_cast<size_t>(g) * To + i] += s;
    }
  }
}

template void mix_forward<float>(float*, const float*, const float*, const float*, int, int, int, int, int, bool);
template void mix_forward<double>(double*, const double*, const double*, const double*, int, int, int, int, int, bool);
template void mix_backward<float>(float*, float*, float*, const float*, const float*, const float*, int, int, int, int, int, bool);
template void mix_backward<double>(double*, double*, double*, const double*, const double*, const double*, int, int, int, int, int, bool);

}  // namespace mm::cpu
