// CpuOps: forwards each op to its reference implementation in src/ops/<op>.cpp.
#include "ops/cpu_ops.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "core/csv.h"
#include "ops/activations.h"
#include "ops/adamw.h"
#include "ops/attention.h"
#include "ops/cross_entropy.h"
#include "ops/distance.h"
#include "ops/embedding.h"
#include "ops/layernorm.h"
#include "ops/linear.h"
#include "ops/masked_mix.h"
#include "ops/rmsnorm.h"
#include "ops/rope.h"

namespace mm {

template <class T> std::string CpuOps<T>::card() const { return "cpu: " + cpu_name(); }

template <class T> void* CpuOps<T>::alloc_bytes(size_t bytes) {
  void* ptr = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (!ptr) throw std::bad_alloc();
  std::memset(ptr, 0, bytes);
  return ptr;
}
template <class T> void CpuOps<T>::free_bytes(void* ptr) { std::free(ptr); }
template <class T> void CpuOps<T>::to_device(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
template <class T> void CpuOps<T>::to_host(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
template <class T> void CpuOps<T>::zero(T* x, size_t n) { std::memset(x, 0, n * sizeof(T)); }
template <class T> void CpuOps<T>::copy(T* dst, const T* src, size_t n) { std::memcpy(dst, src, n * sizeof(T)); }

template <class T> void CpuOps<T>::add_inplace(T* dst, const T* src, size_t n) {
#pragma omp parallel for
  for (size_t i = 0; i < n; ++i) dst[i] += src[i];
}
template <class T> void CpuOps<T>::add(T* out, const T* a, const T* b, size_t n) {
#pragma omp parallel for
  for (size_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

template <class T> void CpuOps<T>::axpy(T* y, const T* x, float alpha, size_t n) {
#pragma omp parallel for
  for (size_t i = 0; i < n; ++i) y[i] += static_cast<T>(alpha) * x[i];
}
template <class T> void CpuOps<T>::distance_loss(T* losses, T* dout, const T* out, const T* target, const T* weights, int N, int D, int kind) {
  cpu::distance_loss(losses, dout, out, target, weights, N, D, kind);
}

template <class T> void CpuOps<T>::embedding_forward(T* out, const int32_t* tokens, const T* wte, const T* wpe, int N, int T_ctx, int D) {
  cpu::embedding_forward(out, tokens, wte, wpe, N, T_ctx, D);
}
template <class T> void CpuOps<T>::embedding_backward(T* dwte, T* dwpe, const T* dout, const int32_t* tokens, int N, int T_ctx, int D, int V) {
  cpu::embedding_backward(dwte, dwpe, dout, tokens, N, T_ctx, D);
}
template <class T> void CpuOps<T>::layernorm_forward(T* out, T* mean, T* rstd, const T* x, const T* w, const T* b, int N, int D) {
  cpu::layernorm_forward(out, mean, rstd, x, w, b, N, D);
}
template <class T> void CpuOps<T>::layernorm_backward(T* dx, T* dw, T* db, const T* dout, const T* dskip, const T* x, const T* w, const T* mean,
                                                      const T* rstd, int N, int D) {
  cpu::layernorm_backward(dx, dw, db, dout, x, w, mean, rstd, N, D);
  if (dskip) add_inplace(dx, dskip, static_cast<size_t>(N) * D);
}
template <class T> void CpuOps<T>::rmsnorm_forward(T* out, T* rstd, const T* x, const T* w, int N, int D) {
  cpu::rmsnorm_forward(out, rstd, x, w, N, D);
}
template <class T> void CpuOps<T>::rmsnorm_backward(T* dx, T* dw, const T* dout, const T* dskip, const T* x, const T* w, const T* rstd, int N, int D) {
  cpu::rmsnorm_backward(dx, dw, dout, x, w, rstd, N, D);
  if (dskip) add_inplace(dx, dskip, static_cast<size_t>(N) * D);
}
template <class T> void CpuOps<T>::linear_forward(T* out, const T* inp, const T* w, const T* b, int N, int IC, int OC) {
  cpu::linear_forward(out, inp, w, b, N, IC, OC);
}
template <class T> void CpuOps<T>::linear_backward(T* dinp, T* dw, T* db, const T* dout, const T* inp, const T* w, int N, int IC, int OC) {
  cpu::linear_backward(dinp, dw, db, dout, inp, w, N, IC, OC);
}
template <class T> void CpuOps<T>::gelu_forward(T* out, const T* inp, size_t n) { cpu::gelu_forward(out, inp, n); }
template <class T> void CpuOps<T>::gelu_backward(T* dinp, const T* dout, const T* inp, size_t n) { cpu::gelu_backward(dinp, dout, inp, n); }
template <class T> void CpuOps<T>::swiglu_forward(T* out, const T* inp, int N, int H) { cpu::swiglu_forward(out, inp, N, H); }
template <class T> void CpuOps<T>::swiglu_backward(T* dinp, const T* dout, const T* inp, int N, int H) { cpu::swiglu_backward(dinp, dout, inp, N, H); }
template <class T> void CpuOps<T>::mix_forward(T* out, const T* inp, const T* w, const T* c, int B, int Ti, int To, int D, int G, bool causal) {
  cpu::mix_forward(out, inp, w, c, B, Ti, To, D, G, causal);
}
template <class T> void CpuOps<T>::mix_backward(T* dinp, T* dw, T* dc, const T* dout, const T* inp, const T* w, int B, int Ti, int To, int D, int G, bool causal) {
  cpu::mix_backward(dinp, dw, dc, dout, inp, w, B, Ti, To, D, G, causal);
}
template <class T> void CpuOps<T>::rope_forward(T* qkv, int B, int T_ctx, int D, int H) { cpu::rope_forward(qkv, B, T_ctx, D, H); }
template <class T> void CpuOps<T>::rope_backward(T* dqkv, int B, int T_ctx, int D, int H) { cpu::rope_backward(dqkv, B, T_ctx, D, H); }
// With rope, attention runs on a rotated copy of qkv and its gradient is rotated back.
template <class T> void CpuOps<T>::attention_forward(T* out, T* probs, const T* qkv, int B, int T_ctx, int D, int H, bool rope) {
  std::vector<T> rotated;
  if (rope) {
    rotated.assign(qkv, qkv + static_cast<size_t>(B) * T_ctx * 3 * D);
    cpu::rope_forward(rotated.data(), B, T_ctx, D, H);
  }
  cpu::attention_forward(out, probs, rope ? rotated.data() : qkv, B, T_ctx, D, H);
}
template <class T> void CpuOps<T>::attention_backward(T* dqkv, const T* dout, const T* qkv, const T* /*out*/, const T* probs, int B, int T_ctx, int D,
                                                      int H, bool rope) {
  std::vector<T> rotated;
  if (rope) {
    rotated.assign(qkv, qkv + static_cast<size_t>(B) * T_ctx * 3 * D);
    cpu::rope_forward(rotated.data(), B, T_ctx, D, H);
  }
  cpu::attention_backward(dqkv, dout, rope ? rotated.data() : qkv, probs, B, T_ctx, D, H);
  if (rope) cpu::rope_backward(dqkv, B, T_ctx, D, H);
}
template <class T> void CpuOps<T>::cross_entropy(T* losses, T* dlogits, const T* logits, const int32_t* targets, int N, int V, const T* dscale) {
  cpu::cross_entropy(losses, dlogits, logits, targets, N, V, dlogits ? *dscale : T(0));
}
template <class T> double CpuOps<T>::sum_squares(const T* x, size_t n) { return cpu::sum_squares(x, n); }
template <class T> void CpuOps<T>::adamw(T* params, const T* grads, T* m, T* v, size_t n, float lr, float beta1, float beta2, float eps,
                                         float weight_decay, int step, float grad_scale) {
  cpu::adamw(params, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, step, grad_scale);
}

template class CpuOps<float>;
template class CpuOps<double>;

}  // namespace mm
