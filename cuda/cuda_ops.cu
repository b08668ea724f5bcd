// CudaOps: the Ops<float> interface over device memory, one call per op into cuda/<op>.cu.
#include <unordered_map>

#include "adamw.cuh"
#include "attention.cuh"
#include "context.cuh"
#include "cross_entropy.cuh"
#include "head_loss.cuh"
#include "distance.cuh"
#include "cuda_ops.h"
#include "elementwise.cuh"
#include "embedding.cuh"
#include "feed_forward.cuh"
#include "graph.cuh"
#include "linear.cuh"
#include "masked_mix.cuh"
#include "norms.cuh"
#include "self_attention.cuh"

namespace mm {

namespace {

class CudaOps final : public Ops<float> {
 public:
  explicit CudaOps(Precision precision) : ctx_(precision) {}
  Device device() const override { return Device::Cuda; }
  std::string card() const override { return ctx_.name() + " (" + precision_name(ctx_.precision()) + ")"; }

  void* alloc_bytes(size_t bytes) override {
    void* ptr = nullptr;
    MM_CUDA_CHECK(cudaMalloc(&ptr, bytes));
    MM_CUDA_CHECK(cudaMemsetAsync(ptr, 0, bytes, ctx_.stream()));
    sizes_[ptr] = bytes;
    ctx_.track(static_cast<long long>(bytes));
    return ptr;
  }
  void free_bytes(void* ptr) override {
    ctx_.forget_shadow(ptr);
    cudaStreamSynchronize(ctx_.stream());
    ctx_.track(-static_cast<long long>(sizes_[ptr]));
    sizes_.erase(ptr);
    cudaFree(ptr);
  }
  size_t peak_bytes() const override { return ctx_.peak_bytes(); }
  double matmul_tflops(int n) override { return cuda::measure_gemm_tflops(ctx_, n); }
  void to_device(void* dst, const void* src, size_t bytes) override {
    MM_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, ctx_.stream()));
    ctx_.refresh_shadows(dst, bytes);
    MM_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream()));  // the host buffer may be reused at once
  }
  void to_host(void* dst, const void* src, size_t bytes) override {
    MM_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, ctx_.stream()));
    MM_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream()));
  }
  // Writes that may land in a parameter buffer keep its bf16 shadow (Context::refresh_shadows) current.
  void zero(float* x, size_t n) override {
    MM_CUDA_CHECK(cudaMemsetAsync(x, 0, n * sizeof(float), ctx_.stream()));
    ctx_.refresh_shadows(x, n * sizeof(float));
  }
  void copy(float* dst, const float* src, size_t n) override {
    MM_CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToDevice, ctx_.stream()));
    ctx_.refresh_shadows(dst, n * sizeof(float));
  }
  void synchronize() override { MM_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream())); }
  bool can_record() const override { return true; }
  std::unique_ptr<Recording> record(const std::function<void()>& issue) override { return cuda::record_graph(ctx_, issue); }
  std::unique_ptr<Stopwatch> stopwatch() override { return cuda::stream_stopwatch(ctx_); }

  void add_inplace(float* dst, const float* src, size_t n) override {
    cuda::add_inplace(ctx_, dst, src, n);
    ctx_.refresh_shadows(dst, n * sizeof(float));
  }
  void add(float* out, const float* a, const float* b, size_t n) override {
    cuda::add(ctx_, out, a, b, n);
    ctx_.refresh_shadows(out, n * sizeof(float));
  }
  void axpy(float* y, const float* x, float alpha, size_t n) override {
    cuda::axpy(ctx_, y, x, alpha, n);
    ctx_.refresh_shadows(y, n * sizeof(float));
  }
  void distance_loss(float* losses, float* dout, const float* out, const float* target, const float* weights, int N, int D, int kind) override {
    cuda::distance_loss(ctx_, losses, dout, out, target, weights, N, D, kind);
  }
  void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int N, int T, int D) override {
    cuda::embedding_forward(ctx_, out, tokens, wte, wpe, N, T, D);
  }
  void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int N, int T, int D, int V) override {
    cuda::embedding_backward(ctx_, dwte, dwpe, dout, tokens, N, T, D, V);
  }
  void layernorm_forward(float* out, float* mean, float* rstd, const float* x, const float* w, const float* b, int N, int D) override {
    cuda::layernorm_forward(ctx_, out, mean, rstd, x, w, b, N, D);
  }
  void layernorm_backward(float* dx, float* dw, float* db, const float* dout, const float* dskip, const float* x, const float* w, const float* mean,
                          const float* rstd, int N, int D) override {
    cuda::layernorm_backward(ctx_, dx, dw, db, dout, dskip, x, w, mean, rstd, N, D);
  }
  void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, int N, int D) override { cuda::rmsnorm_forward(ctx_, out, rstd, x, w, N, D); }
  void rmsnorm_backward(float* dx, float* dw, const float* dout, const float* dskip, const float* x, const float* w, const float* rstd, int N,
                        int D) override {
    cuda::rmsnorm_backward(ctx_, dx, dw, dout, dskip, x, w, rstd, N, D);
  }
  void linear_forward(float* out, const float* inp, const float* w, const float* b, int N, int IC, int OC) override {
    cuda::linear_forward(ctx_, out, inp, w, b, N, IC, OC);
  }
  void linear_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w, int N, int IC, int OC) override {
    cuda::linear_backward(ctx_, dinp, dw, db, dout, inp, w, N, IC, OC);
  }
  void gelu_forward(float* out, const float* inp, size_t n) override { cuda::gelu_forward(ctx_, out, inp, n); }
  void gelu_backward(float* dinp, const float* dout, const float* inp, size_t n) override { cuda::gelu_backward(ctx_, dinp, dout, inp, n); }
  void swiglu_forward(float* out, const float* inp, int N, int H) override { cuda::swiglu_forward(ctx_, out, inp, N, H); }
  void swiglu_backward(float* dinp, const float* dout, const float* inp, int N, int H) override { cuda::swiglu_backward(ctx_, dinp, dout, inp, N, H); }
  void mix_forward(float* out, const float* inp, const float* w, const float* c, int B, int Ti, int To, int D, int G, bool causal) override {
    cuda::mix_forward(ctx_, out, inp, w, c, B, Ti, To, D, G, causal);
  }
  void mix_backward(float* dinp, float* dw, float* dc, const float* dout, const float* inp, const float* w, int B, int Ti, int To, int D, int G, bool causal) override {
    cuda::mix_backward(ctx_, dinp, dw, dc, dout, inp, w, B, Ti, To, D, G, causal);
  }
  // bf16: the mixing input (normalized) kept in bf16 by cuda/masked_mix.cu; otherwise the composed default.
  size_t mix_sublayer_state_size(int B, int T, int D) const override {
    return bf16() ? cuda::mix_sublayer_state_floats(B, T, D) : Ops<float>::mix_sublayer_state_size(B, T, D);
  }
  void mix_sublayer_forward(float* out, float* state, const float* x, const PreNorm<float>& norm, const float* w, const float* c, const float* skip,
                            int B, int T, int D, bool causal) override {
    if (bf16()) cuda::mix_sublayer_forward(ctx_, out, state, x, norm, w, c, skip, B, T, D, causal);
    else Ops<float>::mix_sublayer_forward(out, state, x, norm, w, c, skip, B, T, D, causal);
  }
  void mix_sublayer_backward(float* dinp, float* dw, float* dc, const float* dout, const float* x, const float* state, const PreNorm<float>& norm,
                             const float* w, int B, int T, int D, bool causal, float* dh) override {
    if (bf16()) cuda::mix_sublayer_backward(ctx_, dinp, dw, dc, dout, x, state, norm, w, B, T, D, causal, dh);
    else Ops<float>::mix_sublayer_backward(dinp, dw, dc, dout, x, state, norm, w, B, T, D, causal, dh);
  }
  void rope_forward(float* qkv, int B, int T, int D, int H) override { cuda::rope_forward(ctx_, qkv, B, T, D, H); }
  void rope_backward(float* dqkv, int B, int T, int D, int H) override { cuda::rope_backward(ctx_, dqkv, B, T, D, H); }
  // bf16: hidden activations (and the pre-norm's output) kept in bf16 by cuda/feed_forward.cu; otherwise the composed default.
  size_t ffn_state_size(int N, int D, int F, FfnActivation act, bool prenorm) const override {
    return bf16() ? cuda::ffn_state_floats(N, D, F, act) : Ops<float>::ffn_state_size(N, D, F, act, prenorm);
  }
  void ffn_forward(float* out, float* state, const float* x, const PreNorm<float>& norm, const float* w1, const float* b1, const float* w2,
                   const float* b2, const float* skip, int N, int D, int F, FfnActivation act) override {
    if (bf16()) cuda::ffn_forward(ctx_, out, state, x, norm, w1, b1, w2, b2, skip, N, D, F, act);
    else Ops<float>::ffn_forward(out, state, x, norm, w1, b1, w2, b2, skip, N, D, F, act);
  }
  void ffn_backward(float* dinp, float* dw1, float* db1, float* dw2, float* db2, const float* dout, const float* x, const float* state,
                    const PreNorm<float>& norm, const float* w1, const float* b1, const float* w2, int N, int D, int F, FfnActivation act, float* dact,
                    float* dpre) override {
    if (bf16()) cuda::ffn_backward(ctx_, dinp, dw1, db1, dw2, db2, dout, x, state, norm, w1, b1, w2, N, D, F, act, dact, dpre);
    else Ops<float>::ffn_backward(dinp, dw1, db1, dw2, db2, dout, x, state, norm, w1, b1, w2, N, D, F, act, dact, dpre);
  }
  bool attention_is_fused(int D, int H) const override { return cuda::attention_is_fused(ctx_, D, H); }
  // bf16 with the flash kernels: qkv, the attention output and h kept in bf16 by cuda/self_attention.cu
  size_t self_attention_state_size(int B, int T, int D, int H, bool prenorm) const override {
    return cuda::attention_is_fused(ctx_, D, H) ? cuda::self_attention_state_floats(B, T, D, H)
                                                : Ops<float>::self_attention_state_size(B, T, D, H, prenorm);
  }
  void self_attention_forward(float* out, float* state, const float* x, const PreNorm<float>& norm, const float* wqkv, const float* bqkv,
                              const float* wo, const float* bo, const float* skip, int B, int T, int D, int H, bool rope) override {
    if (cuda::attention_is_fused(ctx_, D, H)) cuda::self_attention_forward(ctx_, out, state, x, norm, wqkv, bqkv, wo, bo, skip, B, T, D, H, rope);
    else Ops<float>::self_attention_forward(out, state, x, norm, wqkv, bqkv, wo, bo, skip, B, T, D, H, rope);
  }
  void self_attention_backward(float* dinp, float* dwqkv, float* dbqkv, float* dwo, float* dbo, const float* dout, const float* x, const float* state,
                               const PreNorm<float>& norm, const float* wqkv, const float* wo, int B, int T, int D, int H, bool rope, float* da,
                               float* dqkv) override {
    if (cuda::attention_is_fused(ctx_, D, H))
      cuda::self_attention_backward(ctx_, dinp, dwqkv, dbqkv, dwo, dbo, dout, x, state, norm, wqkv, wo, B, T, D, H, rope, da, dqkv);
    else Ops<float>::self_attention_backward(dinp, dwqkv, dbqkv, dwo, dbo, dout, x, state, norm, wqkv, wo, B, T, D, H, rope, da, dqkv);
  }
  void attention_forward(float* out, float* state, const float* qkv, int B, int T, int D, int H, bool rope) override {
    cuda::attention_forward(ctx_, out, state, qkv, B, T, D, H, rope);
  }
  void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out, const float* state, int B, int T, int D, int H,
                          bool rope) override {
    cuda::attention_backward(ctx_, dqkv, dout, qkv, out, state, B, T, D, H, rope);
  }
  // bf16: logits and their gradients in bf16 (cuda/head_loss.cu); otherwise the composed default.
  void head_loss_forward(float* losses, float* dlogits, const float* top, const float* w, const int32_t* targets, int N, int D, int V,
                         const float* dscale) override {
    if (bf16()) cuda::head_loss_forward(ctx_, losses, dlogits, top, w, targets, N, D, V, dscale);
    else Ops<float>::head_loss_forward(losses, dlogits, top, w, targets, N, D, V, dscale);
  }
  void head_loss_backward(float* dtop, float* dw, const float* dlogits, const float* top, const float* w, int N, int D, int V) override {
    if (bf16()) cuda::head_loss_backward(ctx_, dtop, dw, dlogits, top, w, N, D, V);
    else Ops<float>::head_loss_backward(dtop, dw, dlogits, top, w, N, D, V);
  }
  void cross_entropy(float* losses, float* dlogits, const float* logits, const int32_t* targets, int N, int V, const float* dscale) override {
    cuda::cross_entropy(ctx_, losses, dlogits, logits, targets, N, V, dscale);
  }
  double sum_squares(const float* x, size_t n) override { return cuda::sum_squares(ctx_, x, n); }
  void adamw(float* params, const float* grads, float* m, float* v, size_t n, float lr, float beta1, float beta2, float eps, float weight_decay, int step,
             float grad_scale) override {
    cuda::adamw(ctx_, params, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, step, grad_scale);
  }

 private:
  bool bf16() const { return ctx_.precision() == Precision::Bf16; }
  cuda::Context ctx_;
  std::unordered_map<void*, size_t> sizes_;
};

}  // namespace

std::unique_ptr<Ops<float>> make_cuda_ops(Precision precision) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    cudaGetLastError();
    cuda::throw_error("CUDA", 100, "no CUDA GPU is available", __FILE__, __LINE__);
  }
  return std::make_unique<CudaOps>(precision);
}

}  // namespace mm
