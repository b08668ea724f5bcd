// The CPU reference backend: Ops<T> over host memory for T = float (training) and double (gradient checks).
#pragma once
#include <cstddef>
#include "ops/ops.h"

namespace mm {

template <class T>
class CpuOps final : public Ops<T> {
 public:
  Device device() const override { return Device::Cpu; }
  std::string card() const override;

  void* alloc_bytes(size_t bytes) override;
  void free_bytes(void* ptr) override;
  void to_device(void* dst, const void* host_src, size_t bytes) override;
  void to_host(void* host_dst, const void* src, size_t bytes) override;
  void zero(T* x, size_t n) override;
  void copy(T* dst, const T* src, size_t n) override;

  void add_inplace(T* dst, const T* src, size_t n) override;
  void add(T* out, const T* a, const T* b, size_t n) override;
  void axpy(T* y, const T* x, float alpha, size_t n) override;
  void distance_loss(T* losses, T* dout, const T* out, const T* target, const T* weights, int N, int D, int kind) override;
  void embedding_forward(T* out, const int32_t* tokens, const T* wte, const T* wpe, int N, int T_ctx, int D) override;
  void embedding_backward(T* dwte, T* dwpe, const T* dout, const int32_t* tokens, int N, int T_ctx, int D, int V) override;
  void layernorm_forward(T* out, T* mean, T* rstd, const T* x, const T* w, const T* b, int N, int D) override;
  void layernorm_backward(T* dx, T* dw, T* db, const T* dout, const T* dskip, const T* x, const T* w, const T* mean, const T* rstd, int N,
                          int D) override;
  void rmsnorm_forward(T* out, T* rstd, const T* x, const T* w, int N, int D) override;
  void rmsnorm_backward(T* dx, T* dw, const T* dout, const T* dskip, const T* x, const T* w, const T* rstd, int N, int D) override;
  void linear_forward(T* out, const T* inp, const T* w, const T* b, int N, int IC, int OC) override;
  void linear_backward(T* dinp, T* dw, T* db, const T* dout, const T* inp, const T* w, int N, int IC, int OC) override;
  void gelu_forward(T* out, const T* inp, size_t n) override;
  void gelu_backward(T* dinp, const T* dout, const T* inp, size_t n) override;
  void swiglu_forward(T* out, const T* inp, int N, int H) override;
  void swiglu_backward(T* dinp, const T* dout, const T* inp, int N, int H) override;
  void mix_forward(T* out, const T* inp, const T* w, const T* c, int B, int Ti, int To, int D, int G, bool causal) override;
  void mix_backward(T* dinp, T* dw, T* dc, const T* dout, const T* inp, const T* w, int B, int Ti, int To, int D, int G, bool causal) override;
  void rope_forward(T* qkv, int B, int T_ctx, int D, int H) override;
  void rope_backward(T* dqkv, int B, int T_ctx, int D, int H) override;
  void attention_forward(T* out, T* probs, const T* qkv, int B, int T_ctx, int D, int H, bool rope) override;
  void attention_backward(T* dqkv, const T* dout, const T* qkv, const T* out, const T* probs, int B, int T_ctx, int D, int H, bool rope) override;
  void cross_entropy(T* losses, T* dlogits, const T* logits, const int32_t* targets, int N, int V, const T* dscale) override;
  double sum_squares(const T* x, size_t n) override;
  void adamw(T* params, const T* grads, T* m, T* v, size_t n, float lr, float beta1, float beta2, float eps, float weight_decay, int step,
             float grad_scale) override;
};

}  // namespace mm
