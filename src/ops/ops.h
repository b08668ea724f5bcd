// The op interface every model is written against. Two implementations: the CPU reference
// (src/ops/, plain loops + OpenBLAS, float and double) and CUDA (cuda/). Conventions:
//   - row-major; N = batch * n_ctx rows; shapes are given in each method's comment;
//   - backward ops OVERWRITE input gradients and ACCUMULATE (+=) into parameter gradients;
//   - pointers belong to the backend's memory (host for CPU, device for CUDA).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace mm {

enum class Device { Cpu, Cuda };

// How CUDA matmuls run: exact fp32; TF32 tensor cores; or bf16 tensor cores (each GEMM's operands are
// rounded to bf16, accumulation and every stored tensor stay fp32: PyTorch autocast's numerics for the
// matmuls, with fp32 activations). The CPU backend always computes in its own type.
enum class Precision { Fp32, Tf32, Bf16 };
inline const char* precision_name(Precision p) { return p == Precision::Fp32 ? "fp32" : p == Precision::Tf32 ? "tf32" : "bf16"; }

// The feed-forward sublayer's activation: exact GELU on [N,F], or SwiGLU on the gate|up rows [N,2F].
enum class FfnActivation { Gelu, SwiGlu };
inline int ffn_pre_width(int F, FfnActivation act) { return act == FfnActivation::SwiGlu ? 2 * F : F; }

// A norm applied to a sublayer's input inside the sublayer op (pre-norm blocks): the op normalizes x
// itself, so a backend stores the normalized rows as it likes (the CUDA bf16 backend writes them in
// bf16 straight into the sublayer's state: no fp32 copy, no rounding pass) and may hand the norm's
// backward a bf16 gradient (as autocast does). Forward writes mean (LayerNorm only) and rstd [N];
// backward reads them, accumulates dw (and db for LayerNorm), and adds dskip [N,D] (the residual's
// gradient, may be null) to the input gradient. kind None: the input reaches the sublayer as it is.
enum class NormKind { None, LayerNorm, RmsNorm };
template <class T>
struct PreNorm {
  NormKind kind = NormKind::None;
  const T* w = nullptr;
  const T* b = nullptr;  // LayerNorm
  T* mean = nullptr;     // LayerNorm
  T* rstd = nullptr;
  T* dw = nullptr;
  T* db = nullptr;  // LayerNorm
  const T* dskip = nullptr;
  bool on() const { return kind != NormKind::None; }
};

// Device time between two marks in a backend's queue (Ops::stopwatch): what the device spent from the
// start mark to the stop mark, idle gaps included, with no host clock involved.
class Stopwatch {
 public:
  virtual ~Stopwatch() = default;
  virtual void start() = 0;
  virtual void stop() = 0;
  virtual double seconds() = 0;  // waits for the stop mark
};

// A recorded sequence of backend ops, replayed with one launch (Ops::record).
class Recording {
 public:
  virtual ~Recording() = default;
  virtual void replay() = 0;
};

template <class T>
class Ops {
 public:
  virtual ~Ops() = default;
  virtual Device device() const = 0;
  virtual std::string card() const = 0;  // what a .meta records as the hardware

  // ---- memory
  virtual void* alloc_bytes(size_t bytes) = 0;  // zero-filled
  virtual void free_bytes(void* ptr) = 0;
  virtual void to_device(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void to_host(void* host_dst, const void* src, size_t bytes) = 0;
  virtual void zero(T* x, size_t n) = 0;
  virtual void copy(T* dst, const T* src, size_t n) = 0;
  virtual void synchronize() {}
  // Peak bytes this backend has held (device allocations + scratch); 0 where not tracked (CPU).
  virtual size_t peak_bytes() const { return 0; }
  // Dense matmul throughput at this backend's precision, timed on an n x n x n GEMM (TFLOP/s): the
  // reachable peak for bench's second MFU column. 0 where not measured (CPU).
  virtual double matmul_tflops(int n) { return 0.0; }

  // ---- elementwise
  virtual void add_inplace(T* dst, const T* src, size_t n) = 0;      // dst += src
  virtual void add(T* out, const T* a, const T* b, size_t n) = 0;     // out = a + b
  virtual void axpy(T* y, const T* x, float alpha, size_t n) = 0;     // y += alpha * x

  // out[N,D] = wte[tokens[n]] (+ wpe[n % T] when wpe != nullptr)
  virtual void embedding_forward(T* out, const int32_t* tokens, const T* wte, const T* wpe, int N, int T_ctx, int D) = 0;
  virtual void embedding_backward(T* dwte, T* dwpe, const T* dout, const int32_t* tokens, int N, int T_ctx, int D, int V) = 0;

  // LayerNorm over D (eps 1e-5); mean/rstd [N] saved for backward. The backward ops add dskip [N,D]
  // (when not null) to dx: the gradient that reaches x through a residual connection.
  virtual void layernorm_forward(T* out, T* mean, T* rstd, const T* x, const T* w, const T* b, int N, int D) = 0;
  virtual void layernorm_backward(T* dx, T* dw, T* db, const T* dout, const T* dskip, const T* x, const T* w, const T* mean, const T* rstd, int N,
                                  int D) = 0;

  // RMSNorm over D (eps 1e-6, Llama); rstd [N]
  virtual void rmsnorm_forward(T* out, T* rstd, const T* x, const T* w, int N, int D) = 0;
  virtual void rmsnorm_backward(T* dx, T* dw, const T* dout, const T* dskip, const T* x, const T* w, const T* rstd, int N, int D) = 0;

  // out[N,OC] = inp[N,IC] @ w[OC,IC]^T (+ b[OC]); dinp may be null (not needed), b/db may be null
  virtual void linear_forward(T* out, const T* inp, const T* w, const T* b, int N, int IC, int OC) = 0;
  virtual void linear_backward(T* dinp, T* dw, T* db, const T* dout, const T* inp, const T* w, int N, int IC, int OC) = 0;

  // exact GELU: x * Phi(x)
  virtual void gelu_forward(T* out, const T* inp, size_t n) = 0;
  virtual void gelu_backward(T* dinp, const T* dout, const T* inp, size_t n) = 0;

  // out[N,H] = silu(inp[:, :H]) * inp[:, H:]; inp [N,2H] = (gate | up)
  virtual void swiglu_forward(T* out, const T* inp, int N, int H) = 0;
  virtual void swiglu_backward(T* dinp, const T* dout, const T* inp, int N, int H) = 0;

  // Masked token mixing. Features split into G groups of D/G; group g uses its own matrix
  // w[g] [To,Ti] of which only the lower triangle (j <= i) is used, and bias c[g] [To]:
  //   out[b,i,g-features] = sum_{j<=i} w[g,i,j] * inp[b,j,g-features] + c[g,i]
  // inp [B,Ti,D], out [B,To,D]. dw's upper triangle is never written (stays exactly zero).
  // causal = false: no mask (bidirectional mixing over a set, for the retrieval model).
  virtual void mix_forward(T* out, const T* inp, const T* w, const T* c, int B, int Ti, int To, int D, int G, bool causal) = 0;
  virtual void mix_backward(T* dinp, T* dw, T* dc, const T* dout, const T* inp, const T* w, int B, int Ti, int To, int D, int G, bool causal) = 0;

  // Token-mixing sublayer of the flat mixer (one [T,T] matrix for every feature), one op so that a backend
  // chooses how its input is kept: h = norm(x) (or x), out[B,T,D] = Mix(h) + skip (mix_forward with
  // G = 1, Ti = To = T; skip may be null). `state` keeps h for backward: mix_sublayer_state_size()
  // elements (here only with a norm, else backward reads x; the CUDA bf16 backend keeps h or x in bf16).
  // Backward takes x again and scratch dh [N,D] (used only with a norm; dinp may alias dout, not dh).
  virtual size_t mix_sublayer_state_size(int B, int T_ctx, int D) const { return static_cast<size_t>(B) * T_ctx * D; }
  virtual void mix_sublayer_forward(T* out, T* state, const T* x, const PreNorm<T>& norm, const T* w, const T* c, const T* skip, int B, int T_ctx, int D,
                                    bool causal) {
    const int N = B * T_ctx;
    const T* h = prenorm_forward(norm, state, x, N, D);
    mix_forward(out, h, w, c, B, T_ctx, T_ctx, D, 1, causal);
    if (skip) add_inplace(out, skip, static_cast<size_t>(N) * D);
  }
  virtual void mix_sublayer_backward(T* dinp, T* dw, T* dc, const T* dout, const T* x, const T* state, const PreNorm<T>& norm, const T* w, int B,
                                     int T_ctx, int D, bool causal, T* dh) {
    mix_backward(norm.on() ? dh : dinp, dw, dc, dout, norm.on() ? state : x, w, B, T_ctx, T_ctx, D, 1, causal);
    prenorm_backward(norm, dinp, dh, x, B * T_ctx, D);
  }

  // Rotary embedding (HF Llama rotate_half convention, theta 10000) applied in place to the q and k
  // parts of qkv [B,T,3D] with H heads; backward rotates the gradient back, in place.
  virtual void rope_forward(T* qkv, int B, int T_ctx, int D, int H) = 0;
  virtual void rope_backward(T* dqkv, int B, int T_ctx, int D, int H) = 0;

  // Causal multi-head attention: qkv [B,T,3D] -> out [B,T,D]; with `rope`, q and k are rotated first
  // (rope_forward's convention; qkv itself is not changed). `state` keeps what backward needs,
  // attention_state_size() elements: the probabilities [B,H,T,T]; or, where attention_is_fused(), only
  // each row's log-sum-exp [B,H,T] (a flash-style kernel that rebuilds the probabilities in backward).
  virtual bool attention_is_fused(int D, int H) const { return false; }
  size_t attention_state_size(int B, int T_ctx, int D, int H) const {
    const size_t rows = static_cast<size_t>(B) * H * T_ctx;
    return attention_is_fused(D, H) ? rows : rows * T_ctx;
  }
  virtual void attention_forward(T* out, T* state, const T* qkv, int B, int T_ctx, int D, int H, bool rope) = 0;
  // out: what attention_forward wrote; dqkv is the gradient w.r.t. the unrotated qkv
  virtual void attention_backward(T* dqkv, const T* dout, const T* qkv, const T* out, const T* state, int B, int T_ctx, int D, int H, bool rope) = 0;

  // Self-attention sublayer, one op so that a backend chooses how its activations are kept:
  //   h = norm(x) (or x), qkv = h[N,D] @ wqkv^T + bqkv [N,3D], a = attention(qkv) [N,D] (attention_forward;
  //   RoPE when rope), out[N,D] = a @ wo^T + bo + skip;  N = B*T, wqkv [3D,D], wo [D,D]; bqkv/bo/skip may be null.
  // `state` keeps what backward needs: self_attention_state_size() elements (here qkv, a, the attention
  // state and, with a norm, h; the CUDA bf16 backend keeps qkv, a and h in bf16 and only each row's
  // log-sum-exp). out == nullptr rebuilds only the state (--recompute). Backward takes x again and
  // scratch da [N,D] and dqkv [N,3D]; without a norm dinp may alias da or dout, with one it may alias
  // dout only (dh goes through da).
  virtual size_t self_attention_state_size(int B, int T_ctx, int D, int H, bool prenorm) const {
    return static_cast<size_t>(B) * T_ctx * (prenorm ? 5 : 4) * D + attention_state_size(B, T_ctx, D, H);
  }
  virtual void self_attention_forward(T* out, T* state, const T* x, const PreNorm<T>& norm, const T* wqkv, const T* bqkv, const T* wo, const T* bo,
                                      const T* skip, int B, int T_ctx, int D, int H, bool rope) {
    const int N = B * T_ctx;
    T* qkv = state;
    T* a = qkv + static_cast<size_t>(N) * 3 * D;
    T* attention_state = a + static_cast<size_t>(N) * D;
    const T* h = prenorm_forward(norm, attention_state + attention_state_size(B, T_ctx, D, H), x, N, D);
    linear_forward(qkv, h, wqkv, bqkv, N, D, 3 * D);
    attention_forward(a, attention_state, qkv, B, T_ctx, D, H, rope);
    if (!out) return;
    linear_forward(out, a, wo, bo, N, D, D);
    if (skip) add_inplace(out, skip, static_cast<size_t>(N) * D);
  }
  virtual void self_attention_backward(T* dinp, T* dwqkv, T* dbqkv, T* dwo, T* dbo, const T* dout, const T* x, const T* state, const PreNorm<T>& norm,
                                       const T* wqkv, const T* wo, int B, int T_ctx, int D, int H, bool rope, T* da, T* dqkv) {
    const int N = B * T_ctx;
    const T* qkv = state;
    const T* a = qkv + static_cast<size_t>(N) * 3 * D;
    const T* attention_state = a + static_cast<size_t>(N) * D;
    const T* h = norm.on() ? attention_state + attention_state_size(B, T_ctx, D, H) : x;
    linear_backward(da, dwo, dbo, dout, a, wo, N, D, D);
    attention_backward(dqkv, da, qkv, a, attention_state, B, T_ctx, D, H, rope);
    linear_backward(norm.on() ? da : dinp, dwqkv, dbqkv, dqkv, h, wqkv, N, D, 3 * D);
    prenorm_backward(norm, dinp, da, x, N, D);
  }

  // Feed-forward sublayer, one op so that a backend chooses how its hidden activations are kept:
  //   h = norm(x) (or x), pre = h[N,D] @ w1^T + b1 [N,Fp], act = GELU(pre) [N,F] (Fp = F) or SwiGLU(pre)
  //   (Fp = 2F, gate|up), out[N,D] = act @ w2^T + b2 + skip;  w1 [Fp,D], w2 [D,F], b1/b2/skip may be null.
  // `state` keeps pre, act and (with a norm) h for backward: ffn_state_size() elements (all in T here;
  // the CUDA bf16 backend keeps h, pre and act in bf16). out == nullptr rebuilds only the state
  // (--recompute). The defaults compose the ops above. Backward takes x again, the forward's b1 (a
  // backend may keep pre without it) and scratch dact [N,F] and dpre [N,Fp]: without a norm they may be
  // one array for GELU and dinp may alias dact; with one they must be distinct (dh [N,D] goes through
  // dact, F >= D).
  virtual size_t ffn_state_size(int N, int D, int F, FfnActivation act, bool prenorm) const {
    return static_cast<size_t>(N) * (ffn_pre_width(F, act) + F + (prenorm ? D : 0));
  }
  virtual void ffn_forward(T* out, T* state, const T* x, const PreNorm<T>& norm, const T* w1, const T* b1, const T* w2, const T* b2, const T* skip, int N,
                           int D, int F, FfnActivation act) {
    const int Fp = ffn_pre_width(F, act);
    T* pre = state;
    T* hidden = state + static_cast<size_t>(N) * Fp;
    const T* h = prenorm_forward(norm, hidden + static_cast<size_t>(N) * F, x, N, D);
    linear_forward(pre, h, w1, b1, N, D, Fp);
    if (act == FfnActivation::Gelu) gelu_forward(hidden, pre, static_cast<size_t>(N) * F);
    else swiglu_forward(hidden, pre, N, F);
    if (!out) return;
    linear_forward(out, hidden, w2, b2, N, F, D);
    if (skip) add_inplace(out, skip, static_cast<size_t>(N) * D);
  }
  virtual void ffn_backward(T* dinp, T* dw1, T* db1, T* dw2, T* db2, const T* dout, const T* x, const T* state, const PreNorm<T>& norm, const T* w1,
                            const T* b1, const T* w2, int N, int D, int F, FfnActivation act, T* dact, T* dpre) {
    const int Fp = ffn_pre_width(F, act);
    const T* pre = state;
    const T* hidden = state + static_cast<size_t>(N) * Fp;
    const T* h = norm.on() ? hidden + static_cast<size_t>(N) * F : x;
    linear_backward(dact, dw2, db2, dout, hidden, w2, N, F, D);
    if (act == FfnActivation::Gelu) gelu_backward(dpre, dact, pre, static_cast<size_t>(N) * F);
    else swiglu_backward(dpre, dact, pre, N, F);
    linear_backward(norm.on() ? dact : dinp, dw1, db1, dpre, h, w1, N, D, Fp);
    prenorm_backward(norm, dinp, dact, x, N, D);
  }

  // The composed pre-norm: h = norm(x) into `h` (returned), or x itself when the norm is off; and its
  // backward dx = d norm / dx applied to dh, plus dskip (nothing when off).
  const T* prenorm_forward(const PreNorm<T>& norm, T* h, const T* x, int N, int D) {
    if (norm.kind == NormKind::LayerNorm) layernorm_forward(h, norm.mean, norm.rstd, x, norm.w, norm.b, N, D);
    else if (norm.kind == NormKind::RmsNorm) rmsnorm_forward(h, norm.rstd, x, norm.w, N, D);
    else return x;
    return h;
  }
  void prenorm_backward(const PreNorm<T>& norm, T* dx, const T* dh, const T* x, int N, int D) {
    if (norm.kind == NormKind::LayerNorm) layernorm_backward(dx, norm.dw, norm.db, dh, norm.dskip, x, norm.w, norm.mean, norm.rstd, N, D);
    else if (norm.kind == NormKind::RmsNorm) rmsnorm_backward(dx, norm.dw, dh, norm.dskip, x, norm.w, norm.rstd, N, D);
  }

  // Fused softmax + cross-entropy. losses[N] = -log softmax(logits)[target] (0 where target < 0);
  // when dlogits != nullptr it receives (softmax - onehot) * dscale[0] for counted rows, 0 elsewhere
  // (dlogits may alias logits). dscale: one value in backend memory, read when the op runs (so a
  // recorded step replays with each step's scale); may be null without dlogits.
  virtual void cross_entropy(T* losses, T* dlogits, const T* logits, const int32_t* targets, int N, int V, const T* dscale) = 0;

  // Language-model head and loss for a training step, one op so that a backend chooses how the logits are
  // kept: logits = top[N,D] @ w[V,D]^T, losses[N] = cross_entropy(logits, targets), and the gradient
  // (softmax - onehot) * dscale[0] left in `dlogits` (an [N,V] array; the CUDA bf16 backend computes the
  // logits in bf16, as autocast does, and leaves bf16 gradients in its first half) for
  // head_loss_backward, which writes dtop [N,D] and accumulates dw. The defaults compose linear_forward,
  // cross_entropy and linear_backward.
  virtual void head_loss_forward(T* losses, T* dlogits, const T* top, const T* w, const int32_t* targets, int N, int D, int V, const T* dscale) {
    linear_forward(dlogits, top, w, nullptr, N, D, V);
    cross_entropy(losses, dlogits, dlogits, targets, N, V, dscale);
  }
  virtual void head_loss_backward(T* dtop, T* dw, const T* dlogits, const T* top, const T* w, int N, int D, int V) {
    linear_backward(dtop, dw, nullptr, dlogits, top, w, N, D, V);
  }

  // Per-row distance of out [N,D] to target (0 = L1, 1 = L2, 2 = cosine) weighted by weights [N], and
  // its gradient w.r.t. out (src/ops/distance.h): the objective of input inversion.
  virtual void distance_loss(T* losses, T* dout, const T* out, const T* target, const T* weights, int N, int D, int kind) = 0;

  // ---- recording (CUDA graphs)
  // Records the ops that `issue` makes, without running them, for replay with one launch; nullptr
  // where the recording failed (the caller then runs `issue` itself). The recorded ops must not wait
  // for the host or allocate, and replay reuses their arguments. can_record(): whether record() and
  // replaying recordings are allowed now (not on the CPU, not while profiling op by op).
  virtual bool can_record() const { return false; }
  virtual std::unique_ptr<Recording> record(const std::function<void()>& issue) { return nullptr; }
  // A stopwatch on this backend's queue; nullptr where the device keeps no clock of its own (CPU).
  virtual std::unique_ptr<Stopwatch> stopwatch() { return nullptr; }

  // sum of squares of x (deterministic order); the result is returned to the host
  virtual double sum_squares(const T* x, size_t n) = 0;
  // AdamW on a flat buffer: g' = g * grad_scale; bias-corrected; decoupled weight decay. The CUDA bf16
  // backend also writes a bf16 copy of `params` that its GEMMs then read; it stays current as long as
  // the buffer is written only through adamw, to_device, copy, zero, add, add_inplace and axpy.
  virtual void adamw(T* params, const T* grads, T* m, T* v, size_t n, float lr, float beta1, float beta2, float eps,
                     float weight_decay, int step, float grad_scale) = 0;
};

// RAII array in a backend's memory.
template <class E, class T>
class DeviceArray {
 public:
  DeviceArray() = default;
  DeviceArray(Ops<T>& ops, size_t n) : ops_(&ops), n_(n), ptr_(static_cast<E*>(n ? ops.alloc_bytes(n * sizeof(E)) : nullptr)) {}
  ~DeviceArray() { reset(); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  DeviceArray(DeviceArray&& o) noexcept : ops_(o.ops_), n_(o.n_), ptr_(o.ptr_) { o.ptr_ = nullptr; o.n_ = 0; }
  DeviceArray& operator=(DeviceArray&& o) noexcept {
    if (this != &o) {
      reset();
      ops_ = o.ops_; n_ = o.n_; ptr_ = o.ptr_;
      o.ptr_ = nullptr; o.n_ = 0;
    }
    return *this;
  }
  void reset() {
    if (ptr_) ops_->free_bytes(ptr_);
    ptr_ = nullptr;
    n_ = 0;
  }
  E* get() const { return ptr_; }
  size_t size() const { return n_; }

 private:
  Ops<T>* ops_ = nullptr;
  size_t n_ = 0;
  E* ptr_ = nullptr;
};

}  // namespace mm
