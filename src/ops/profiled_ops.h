// ProfiledOps: an Ops<T> decorator that times every op call of the backend it wraps (per op and shape),
// so `maskmix bench --profile` can say where a training step's time goes on any backend. While enabled
// it synchronizes the backend before and after each call, so each op's time is its own (launch and
// kernel), not the queue's; disabled, it only forwards (one extra virtual call per op).
#pragma once
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "ops/ops.h"

namespace mm {

struct OpTiming {
  std::string op;     // e.g. "linear_forward"
  std::string shape;  // e.g. "16384x512->2048"
  long calls = 0;
  double seconds = 0;
};

template <class T>
class ProfiledOps final : public Ops<T> {
 public:
  explicit ProfiledOps(Ops<T>& inner) : inner_(inner) {}
  void set_enabled(bool on) { enabled_ = on; }
  void reset() { timings_.clear(); }
  // All timings, largest total first.
  std::vector<OpTiming> timings() const;

  Device device() const override { return inner_.device(); }
  std::string card() const override { return inner_.card(); }
  void* alloc_bytes(size_t bytes) override { return inner_.alloc_bytes(bytes); }
  void free_bytes(void* ptr) override { inner_.free_bytes(ptr); }
  void to_device(void* dst, const void* src, size_t bytes) override {
    time("to_device", [&] { return fmt::format("{}B", bytes); }, [&] { inner_.to_device(dst, src, bytes); });
  }
  void to_host(void* dst, const void* src, size_t bytes) override {
    time("to_host", [&] { return fmt::format("{}B", bytes); }, [&] { inner_.to_host(dst, src, bytes); });
  }
  void zero(T* x, size_t n) override {
    time("zero", [&] { return std::to_string(n); }, [&] { inner_.zero(x, n); });
  }
  void copy(T* dst, const T* src, size_t n) override {
    time("copy", [&] { return std::to_string(n); }, [&] { inner_.copy(dst, src, n); });
  }
  void synchronize() override { inner_.synchronize(); }
  size_t peak_bytes() const override { return inner_.peak_bytes(); }

  void add_inplace(T* dst, const T* src, size_t n) override {
    time("add_inplace", [&] { return std::to_string(n); }, [&] { inner_.add_inplace(dst, src, n); });
  }
  void add(T* out, const T* a, const T* b, size_t n) override {
    time("add", [&] { return std::to_string(n); }, [&] { inner_.add(out, a, b, n); });
  }
  void axpy(T* y, const T* x, float alpha, size_t n) override {
    time("axpy", [&] { return std::to_string(n); }, [&] { inner_.axpy(y, x, alpha, n); });
  }
  void embedding_forward(T* out, const int32_t* tokens, const T* wte, const T* wpe, int N, int T_ctx, int D) override {
    time("embedding_forward", [&] { return rows(N, D); }, [&] { inner_.embedding_forward(out, tokens, wte, wpe, N, T_ctx, D); });
  }
  void embedding_backward(T* dwte, T* dwpe, const T* dout, const int32_t* tokens, int N, int T_ctx, int D, int V) override {
    time("embedding_backward", [&] { return rows(N, D); }, [&] { inner_.embedding_backward(dwte, dwpe, dout, tokens, N, T_ctx, D, V); });
  }
  void layernorm_forward(T* out, T* mean, T* rstd, const T* x, const T* w, const T* b, int N, int D) override {
    time("layernorm_forward", [&] { return rows(N, D); }, [&] { inner_.layernorm_forward(out, mean, rstd, x, w, b, N, D); });
  }
  void layernorm_backward(T* dx, T* dw, T* db, const T* dout, const T* dskip, const T* x, const T* w, const T* mean, const T* rstd, int N,
                          int D) override {
    time("layernorm_backward", [&] { return rows(N, D); }, [&] { inner_.layernorm_backward(dx, dw, db, dout, dskip, x, w, mean, rstd, N, D); });
  }
  void rmsnorm_forward(T* out, T* rstd, const T* x, const T* w, int N, int D) override {
    time("rmsnorm_forward", [&] { return rows(N, D); }, [&] { inner_.rmsnorm_forward(out, rstd, x, w, N, D); });
  }
  void rmsnorm_backward(T* dx, T* dw, const T* dout, const T* dskip, const T* x, const T* w, const T* rstd, int N, int D) override {
    time("rmsnorm_backward", [&] { return rows(N, D); }, [&] { inner_.rmsnorm_backward(dx, dw, dout, dskip, x, w, rstd, N, D); });
  }
  void linear_forward(T* out, const T* inp, const T* w, const T* b, int N, int IC, int OC) override {
    time("linear_forward", [&] { return linear_shape(N, IC, OC, b != nullptr); }, [&] { inner_.linear_forward(out, inp, w, b, N, IC, OC); });
  }
  void linear_backward(T* dinp, T* dw, T* db, const T* dout, const T* inp, const T* w, int N, int IC, int OC) override {
    time("linear_backward", [&] { return linear_shape(N, IC, OC, db != nullptr); },
        [&] { inner_.linear_backward(dinp, dw, db, dout, inp, w, N, IC, OC); });
  }
  void gelu_forward(T* out, const T* inp, size_t n) override {
    time("gelu_forward", [&] { return std::to_string(n); }, [&] { inner_.gelu_forward(out, inp, n); });
  }
  void gelu_backward(T* dinp, const T* dout, const T* inp, size_t n) override {
    time("gelu_backward", [&] { return std::to_string(n); }, [&] { inner_.gelu_backward(dinp, dout, inp, n); });
  }
  void swiglu_forward(T* out, const T* inp, int N, int H) override {
    time("swiglu_forward", [&] { return rows(N, H); }, [&] { inner_.swiglu_forward(out, inp, N, H); });
  }
  void swiglu_backward(T* dinp, const T* dout, const T* inp, int N, int H) override {
    time("swiglu_backward", [&] { return rows(N, H); }, [&] { inner_.swiglu_backward(dinp, dout, inp, N, H); });
  }
  void mix_forward(T* out, const T* inp, const T* w, const T* c, int B, int Ti, int To, int D, int G, bool causal) override {
    time("mix_forward", [&] { return mix_shape(B, Ti, To, D, G); }, [&] { inner_.mix_forward(out, inp, w, c, B, Ti, To, D, G, causal); });
  }
  void mix_backward(T* dinp, T* dw, T* dc, const T* dout, const T* inp, const T* w, int B, int Ti, int To, int D, int G, bool causal) override {
    time("mix_backward", [&] { return mix_shape(B, Ti, To, D, G); },
        [&] { inner_.mix_backward(dinp, dw, dc, dout, inp, w, B, Ti, To, D, G, causal); });
  }
  size_t mix_sublayer_state_size(int B, int T_ctx, int D) const override { return inner_.mix_sublayer_state_size(B, T_ctx, D); }
  void mix_sublayer_forward(T* out, T* state, const T* x, const PreNorm<T>& norm, const T* w, const T* c, const T* skip, int B, int T_ctx, int D,
                            bool causal) override {
    time("mix_sublayer_forward", [&] { return mix_shape(B, T_ctx, T_ctx, D, 1) + norm_suffix(norm); },
         [&] { inner_.mix_sublayer_forward(out, state, x, norm, w, c, skip, B, T_ctx, D, causal); });
  }
  void mix_sublayer_backward(T* dinp, T* dw, T* dc, const T* dout, const T* x, const T* state, const PreNorm<T>& norm, const T* w, int B, int T_ctx,
                             int D, bool causal, T* dh) override {
    time("mix_sublayer_backward", [&] { return mix_shape(B, T_ctx, T_ctx, D, 1) + norm_suffix(norm); },
         [&] { inner_.mix_sublayer_backward(dinp, dw, dc, dout, x, state, norm, w, B, T_ctx, D, causal, dh); });
  }
  void rope_forward(T* qkv, int B, int T_ctx, int D, int H) override {
    time("rope_forward", [&] { return rows(B * T_ctx, D); }, [&] { inner_.rope_forward(qkv, B, T_ctx, D, H); });
  }
  void rope_backward(T* dqkv, int B, int T_ctx, int D, int H) override {
    time("rope_backward", [&] { return rows(B * T_ctx, D); }, [&] { inner_.rope_backward(dqkv, B, T_ctx, D, H); });
  }
  size_t ffn_state_size(int N, int D, int F, FfnActivation act, bool prenorm) const override { return inner_.ffn_state_size(N, D, F, act, prenorm); }
  void ffn_forward(T* out, T* state, const T* x, const PreNorm<T>& norm, const T* w1, const T* b1, const T* w2, const T* b2, const T* skip, int N,
                   int D, int F, FfnActivation act) override {
    time(out ? "ffn_forward" : "ffn_recompute", [&] { return ffn_shape(N, D, F, act, norm); },
         [&] { inner_.ffn_forward(out, state, x, norm, w1, b1, w2, b2, skip, N, D, F, act); });
  }
  void ffn_backward(T* dinp, T* dw1, T* db1, T* dw2, T* db2, const T* dout, const T* x, const T* state, const PreNorm<T>& norm, const T* w1,
                    const T* b1, const T* w2, int N, int D, int F, FfnActivation act, T* dact, T* dpre) override {
    time("ffn_backward", [&] { return ffn_shape(N, D, F, act, norm); },
         [&] { inner_.ffn_backward(dinp, dw1, db1, dw2, db2, dout, x, state, norm, w1, b1, w2, N, D, F, act, dact, dpre); });
  }
  size_t self_attention_state_size(int B, int T_ctx, int D, int H, bool prenorm) const override {
    return inner_.self_attention_state_size(B, T_ctx, D, H, prenorm);
  }
  void self_attention_forward(T* out, T* state, const T* x, const PreNorm<T>& norm, const T* wqkv, const T* bqkv, const T* wo, const T* bo, const T* skip,
                              int B, int T_ctx, int D, int H, bool rope) override {
    time(out ? "self_attention_forward" : "self_attention_recompute", [&] { return attention_shape(B, T_ctx, D, H, rope, norm); },
         [&] { inner_.self_attention_forward(out, state, x, norm, wqkv, bqkv, wo, bo, skip, B, T_ctx, D, H, rope); });
  }
  void self_attention_backward(T* dinp, T* dwqkv, T* dbqkv, T* dwo, T* dbo, const T* dout, const T* x, const T* state, const PreNorm<T>& norm,
                               const T* wqkv, const T* wo, int B, int T_ctx, int D, int H, bool rope, T* da, T* dqkv) override {
    time("self_attention_backward", [&] { return attention_shape(B, T_ctx, D, H, rope, norm); },
         [&] { inner_.self_attention_backward(dinp, dwqkv, dbqkv, dwo, dbo, dout, x, state, norm, wqkv, wo, B, T_ctx, D, H, rope, da, dqkv); });
  }
  double matmul_tflops(int n) override { return inner_.matmul_tflops(n); }
  bool attention_is_fused(int D, int H) const override { return inner_.attention_is_fused(D, H); }
  void attention_forward(T* out, T* state, const T* qkv, int B, int T_ctx, int D, int H, bool rope) override {
    time("attention_forward", [&] { return attention_shape(B, T_ctx, D, H, rope); },
         [&] { inner_.attention_forward(out, state, qkv, B, T_ctx, D, H, rope); });
  }
  void attention_backward(T* dqkv, const T* dout, const T* qkv, const T* out, const T* state, int B, int T_ctx, int D, int H, bool rope) override {
    time("attention_backward", [&] { return attention_shape(B, T_ctx, D, H, rope); },
        [&] { inner_.attention_backward(dqkv, dout, qkv, out, state, B, T_ctx, D, H, rope); });
  }
  void head_loss_forward(T* losses, T* dlogits, const T* top, const T* w, const int32_t* targets, int N, int D, int V, const T* dscale) override {
    time("head_loss_forward", [&] { return linear_shape(N, D, V, false); }, [&] { inner_.head_loss_forward(losses, dlogits, top, w, targets, N, D, V, dscale); });
  }
  void head_loss_backward(T* dtop, T* dw, const T* dlogits, const T* top, const T* w, int N, int D, int V) override {
    time("head_loss_backward", [&] { return linear_shape(N, D, V, false); }, [&] { inner_.head_loss_backward(dtop, dw, dlogits, top, w, N, D, V); });
  }
  void cross_entropy(T* losses, T* dlogits, const T* logits, const int32_t* targets, int N, int V, const T* dscale) override {
    time("cross_entropy", [&] { return rows(N, V); }, [&] { inner_.cross_entropy(losses, dlogits, logits, targets, N, V, dscale); });
  }
  void distance_loss(T* losses, T* dout, const T* out, const T* target, const T* weights, int N, int D, int kind) override {
    time("distance_loss", [&] { return rows(N, D); }, [&] { inner_.distance_loss(losses, dout, out, target, weights, N, D, kind); });
  }
  // Profiling times ops one by one, so nothing is recorded or replayed while it is on.
  bool can_record() const override { return !enabled_ && inner_.can_record(); }
  std::unique_ptr<Recording> record(const std::function<void()>& issue) override { return inner_.record(issue); }
  std::unique_ptr<Stopwatch> stopwatch() override { return inner_.stopwatch(); }
  double sum_squares(const T* x, size_t n) override {
    double result = 0;
    time("sum_squares", [&] { return std::to_string(n); }, [&] { result = inner_.sum_squares(x, n); });
    return result;
  }
  void adamw(T* params, const T* grads, T* m, T* v, size_t n, float lr, float beta1, float beta2, float eps, float weight_decay, int step,
             float grad_scale) override {
    time("adamw", [&] { return std::to_string(n); },
        [&] { inner_.adamw(params, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, step, grad_scale); });
  }

 private:
  static std::string rows(long N, long D) { return fmt::format("{}x{}", N, D); }
  static std::string linear_shape(int N, int IC, int OC, bool bias) { return fmt::format("{}x{}->{}{}", N, IC, OC, bias ? "+b" : ""); }
  static std::string mix_shape(int B, int Ti, int To, int D, int G) { return fmt::format("B{} {}->{} D{} G{}", B, Ti, To, D, G); }
  static const char* norm_suffix(const PreNorm<T>& norm) {
    return norm.kind == NormKind::LayerNorm ? " +layernorm" : norm.kind == NormKind::RmsNorm ? " +rmsnorm" : "";
  }
  static std::string ffn_shape(int N, int D, int F, FfnActivation act, const PreNorm<T>& norm = {}) {
    return fmt::format("{}x{}->{} {}{}", N, D, F, act == FfnActivation::Gelu ? "gelu" : "swiglu", norm_suffix(norm));
  }
  static std::string attention_shape(int B, int T_ctx, int D, int H, bool rope, const PreNorm<T>& norm = {}) {
    return fmt::format("B{} T{} D{} H{}{}{}", B, T_ctx, D, H, rope ? " rope" : "", norm_suffix(norm));
  }

  // shape() names the call's shape; it runs only while profiling, so a disabled wrapper costs nothing more.
  template <class S, class F>
  void time(const char* op, S&& shape, F&& call) {
    if (!enabled_) {
      call();
      return;
    }
    inner_.synchronize();
    const auto start = std::chrono::steady_clock::now();
    call();
    inner_.synchronize();
    OpTiming& t = timings_[{op, shape()}];
    t.calls += 1;
    t.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  Ops<T>& inner_;
  bool enabled_ = false;
  std::map<std::pair<std::string, std::string>, OpTiming> timings_;
};

template <class T>
std::vector<OpTiming> ProfiledOps<T>::timings() const {
  std::vector<OpTiming> all;
  for (const auto& [key, t] : timings_) {
    OpTiming row = t;
    row.op = key.first;
    row.shape = key.second;
    all.push_back(row);
  }
  std::sort(all.begin(), all.end(), [](const OpTiming& a, const OpTiming& b) { return a.seconds > b.seconds; });
  return all;
}

}  // namespace mm
