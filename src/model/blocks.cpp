// Block implementations. Shapes: B batch, T = n_ctx, D = d_model, F = ff_mult * D, N = B*T rows.
#include "model/blocks.h"

#include <cmath>

#include "core/error.h"

namespace mm {

void InitRules::weight(ParamTable& t, std::string name, std::vector<int64_t> shape, int fan_in, bool lower_triangular) const {
  if (hf) t.add(std::move(name), std::move(shape), InitKind::Normal, 0.02f, lower_triangular);
  else t.add(std::move(name), std::move(shape), InitKind::Uniform, 1.0f / std::sqrt(static_cast<float>(fan_in)), lower_triangular);
}
void InitRules::bias(ParamTable& t, std::string name, std::vector<int64_t> shape, int fan_in) const {
  if (hf) t.add(std::move(name), std::move(shape), InitKind::Zeros);
  else t.add(std::move(name), std::move(shape), InitKind::Uniform, 1.0f / std::sqrt(static_cast<float>(fan_in)));
}
void InitRules::embedding(ParamTable& t, std::string name, std::vector<int64_t> shape) const {
  t.add(std::move(name), std::move(shape), InitKind::Normal, hf ? 0.02f : 1.0f);
}

InitRules init_rules_for(InitScheme scheme, ModelKind family) {
  if (scheme == InitScheme::Torch) return {false};
  if (scheme == InitScheme::Hf) return {true};
  return {family != ModelKind::Mixer};  // paper: mixer code uses PyTorch defaults, HF models N(0, 0.02)
}

template <class T>
typename Block<T>::ScratchWidths Block<T>::scratch_widths(const ModelConfig& c) {
  const int D = c.d_model, F = c.ff_mult * D;
  // a: the widest gradient ([N,2F] SwiGLU, [N,F] GELU, [N,3D] qkv, Llama/hybrid's da and dqkv [N,4D], the
  // expanded mixer's inner rows); b: Llama/hybrid's [N, max(F, D)] middle gradient, else [N,D]; c: always [N,D]
  const bool llama = c.kind == ModelKind::Llama || c.kind == ModelKind::Hybrid;
  return {std::max({2 * F, llama ? 4 * D : 3 * D, c.expansion * D, D}), llama ? std::max(F, D) : D, D};
}

namespace {

// Common helpers: a block owns activation arrays sized for max_batch.
template <class T>
struct Acts {
  Ops<T>& ops;
  std::vector<DeviceArray<T, T>> arrays;
  size_t elements = 0;
  explicit Acts(Ops<T>& o) : ops(o) {}
  T* make(size_t n) {
    arrays.emplace_back(ops, n);
    elements += n;
    return arrays.back().get();
  }
};

// ------------------------------------------------------------------------------------------------
template <class T>
class MixerBlock final : public Block<T> {
 public:
  MixerBlock(const ModelConfig& c, int layer, ParamTable& t, const ParamStore<T>& s, Ops<T>& ops, int max_batch, SharedBuffers<T> shared)
      : c_(c), s_(s), ops_(ops), acts_(ops), recompute_(shared.ffn_state != nullptr) {
    const int D = c.d_model, T_ = c.n_ctx, F = c.ff_mult * D;
    const std::string pre = fmt::format("blocks.{}.", layer);
    const InitRules r = init_rules_for(c.init, ModelKind::Mixer);
    ln1_w_ = t.add(pre + "ln1.weight", {D}, InitKind::Ones);
    ln1_b_ = t.add(pre + "ln1.bias", {D}, InitKind::Zeros);
    const size_t rows = static_cast<size_t>(max_batch) * T_;
    switch (c.variant) {
      case MixerVariant::Flat:
        mix_w_.push_back(t.entries().size()); r.weight(t, pre + "mix.weight", {T_, T_}, T_, c_.causal);
        mix_c_.push_back(t.entries().size()); r.bias(t, pre + "mix.bias", {T_}, T_);
        break;
      case MixerVariant::Heads: {
        const int H = c.mixer_heads;
        proj_w_ = t.entries().size(); r.weight(t, pre + "mix.proj.weight", {D, D}, D);
        proj_b_ = t.entries().size(); r.bias(t, pre + "mix.proj.bias", {D}, D);
        mix_w_.push_back(t.entries().size()); r.weight(t, pre + "mix.weight", {H, T_, T_}, T_, c_.causal);
        mix_c_.push_back(t.entries().size()); r.bias(t, pre + "mix.bias", {H, T_}, T_);
        out_w_ = t.entries().size(); r.weight(t, pre + "mix.out.weight", {D, D}, D);
        out_b_ = t.entries().size(); r.bias(t, pre + "mix.out.bias", {D}, D);
        proj_ = acts_.make(rows * D);
        mixed_ = acts_.make(rows * D);
        break;
      }
      case MixerVariant::Parallel:
        for (int j = 0; j < c.parallel; ++j) {
          mix_w_.push_back(t.entries().size()); r.weight(t, pre + fmt::format("mix.{}.weight", j), {T_, T_}, T_, c_.causal);
          mix_c_.push_back(t.entries().size()); r.bias(t, pre + fmt::format("mix.{}.bias", j), {T_}, T_);
          branch_pre_.push_back(acts_.make(rows * D));
        }
        break;
      case MixerVariant::Expanded: {
        const int E = c.expansion * T_;
        mix_w_.push_back(t.entries().size()); r.weight(t, pre + "mix.in.weight", {E, T_}, T_, c_.causal);
        mix_c_.push_back(t.entries().size()); r.bias(t, pre + "mix.in.bias", {E}, T_);
        mix_w_.push_back(t.entries().size()); r.weight(t, pre + "mix.out.weight", {T_, E}, E, c_.causal);
        mix_c_.push_back(t.entries().size()); r.bias(t, pre + "mix.out.bias", {T_}, E);
        inner_pre_ = acts_.make(static_cast<size_t>(max_batch) * E * D);
        inner_act_ = acts_.make(static_cast<size_t>(max_batch) * E * D);
        break;
      }
    }
    ln2_w_ = t.add(pre + "ln2.weight", {D}, InitKind::Ones);
    ln2_b_ = t.add(pre + "ln2.bias", {D}, InitKind::Zeros);
    fc_w_ = t.entries().size(); r.weight(t, pre + "ff.fc.weight", {F, D}, D);
    fc_b_ = t.entries().size(); r.bias(t, pre + "ff.fc.bias", {F}, D);
    pr_w_ = t.entries().size(); r.weight(t, pre + "ff.proj.weight", {D, F}, F);
    pr_b_ = t.entries().size(); r.bias(t, pre + "ff.proj.bias", {D}, F);

    ln1_mean_ = acts_.make(rows); ln1_rstd_ = acts_.make(rows);
    if (c.variant == MixerVariant::Flat) {  // LN1, the mixing and the residual in one op
      mix_state_ = acts_.make(ops.mix_sublayer_state_size(max_batch, T_, D));
    } else {
      ln1_ = acts_.make(rows * D);
      mix_out_ = shared.transient ? shared.transient : acts_.make(rows * D);  // read only by the residual add below
    }
    x2_ = acts_.make(rows * D);
    ln2_mean_ = acts_.make(rows); ln2_rstd_ = acts_.make(rows);
    ffn_state_ = recompute_ ? shared.ffn_state : acts_.make(ops.ffn_state_size(static_cast<int>(rows), D, F, FfnActivation::Gelu, /*prenorm=*/true));
  }

  void forward(const T* x, T* y, int B) override {
    const int D = c_.d_model, T_ = c_.n_ctx, F = c_.ff_mult * D, N = B * T_;
    const size_t ND = static_cast<size_t>(N) * D;
    if (c_.variant == MixerVariant::Flat) {  // x2 = x + Mix(LN(x))
      ops_.mix_sublayer_forward(x2_, mix_state_, x, ln1(), s_.p(mix_w_[0]), s_.p(mix_c_[0]), x, B, T_, D, c_.causal);
    } else {
      ops_.layernorm_forward(ln1_, ln1_mean_, ln1_rstd_, x, s_.p(ln1_w_), s_.p(ln1_b_), N, D);
      token_mix_forward(B);
      ops_.add(x2_, x, mix_out_, ND);
    }
    ops_.ffn_forward(y, ffn_state_, x2_, ln2(), s_.p(fc_w_), s_.p(fc_b_), s_.p(pr_w_), s_.p(pr_b_), x2_, N, D, F, FfnActivation::Gelu);  // y = x2 + FFN(LN(x2))
    x_ = x;
  }

  size_t activation_elements() const override { return acts_.elements; }

  void backward(const T* dy, T* dx, int B, const Workspace<T>& ws) override {
    const int D = c_.d_model, T_ = c_.n_ctx, F = c_.ff_mult * D, N = B * T_;
    T* dact = ws.a;                                // [N,F]
    T* dpre = ws.a + static_cast<size_t>(N) * F;   // [N,F] (ws.a holds 2F per row)
    T* dln = ws.b;                                 // [N,D]
    T* dx2 = ws.c;                                 // [N,D]
    if (recompute_)  // the shared state holds the last block's values: rebuild this block's (bit-identical)
      ops_.ffn_forward(nullptr, ffn_state_, x2_, ln2(), s_.p(fc_w_), s_.p(fc_b_), s_.p(pr_w_), s_.p(pr_b_), nullptr, N, D, F, FfnActivation::Gelu);
    ops_.ffn_backward(dx2, s_.g(fc_w_), s_.g(fc_b_), s_.g(pr_w_), s_.g(pr_b_), dy, x2_, ffn_state_, ln2(dy), s_.p(fc_w_), s_.p(fc_b_), s_.p(pr_w_), N, D,
                      F, FfnActivation::Gelu, dact, dpre);  // dx2 = dy + d FFN(LN(x2)) / dx2
    if (c_.variant == MixerVariant::Flat) {  // dx = dx2 + d Mix(LN(x)) / dx
      ops_.mix_sublayer_backward(dx, s_.g(mix_w_[0]), s_.g(mix_c_[0]), dx2, x_, mix_state_, ln1(dx2), s_.p(mix_w_[0]), B, T_, D, c_.causal, /*dh=*/dln);
      return;
    }
    token_mix_backward(dx2, dln, B, ws.a);
    ops_.layernorm_backward(dx, s_.g(ln1_w_), s_.g(ln1_b_), dln, dx2, x_, s_.p(ln1_w_), ln1_mean_, ln1_rstd_, N, D);
  }

 private:
  // LN1 (inside the flat mixer's mixing op) and LN2 (inside the feed-forward op); dskip: the residual's
  // gradient (backward)
  PreNorm<T> ln1(const T* dskip = nullptr) const {
    return {NormKind::LayerNorm, s_.p(ln1_w_), s_.p(ln1_b_), ln1_mean_, ln1_rstd_, s_.g(ln1_w_), s_.g(ln1_b_), dskip};
  }
  PreNorm<T> ln2(const T* dskip = nullptr) const {
    return {NormKind::LayerNorm, s_.p(ln2_w_), s_.p(ln2_b_), ln2_mean_, ln2_rstd_, s_.g(ln2_w_), s_.g(ln2_b_), dskip};
  }

  // mix_out_ = Mix(ln1_) for the variants other than flat (whose mixing is one op, mix_sublayer_*)
  void token_mix_forward(int B) {
    const int D = c_.d_model, T_ = c_.n_ctx, N = B * T_;
    const size_t ND = static_cast<size_t>(N) * D;
    switch (c_.variant) {
      case MixerVariant::Flat:
        break;
      case MixerVariant::Heads:
        ops_.linear_forward(proj_, ln1_, s_.p(proj_w_), s_.p(proj_b_), N, D, D);
        ops_.mix_forward(mixed_, proj_, s_.p(mix_w_[0]), s_.p(mix_c_[0]), B, T_, T_, D, c_.mixer_heads, c_.causal);
        ops_.linear_forward(mix_out_, mixed_, s_.p(out_w_), s_.p(out_b_), N, D, D);
        break;
      case MixerVariant::Parallel:
        for (size_t j = 0; j < mix_w_.size(); ++j) {
          ops_.mix_forward(branch_pre_[j], ln1_, s_.p(mix_w_[j]), s_.p(mix_c_[j]), B, T_, T_, D, 1, c_.causal);
          if (j == 0) ops_.gelu_forward(mix_out_, branch_pre_[j], ND);
          else {
            ops_.gelu_forward(x2_, branch_pre_[j], ND);  // x2_ is free until the residual add
            ops_.add_inplace(mix_out_, x2_, ND);
          }
        }
        break;
      case MixerVariant::Expanded: {
        const int E = c_.expansion * T_;
        ops_.mix_forward(inner_pre_, ln1_, s_.p(mix_w_[0]), s_.p(mix_c_[0]), B, T_, E, D, 1, c_.causal);
        ops_.gelu_forward(inner_act_, inner_pre_, static_cast<size_t>(B) * E * D);
        ops_.mix_forward(mix_out_, inner_act_, s_.p(mix_w_[1]), s_.p(mix_c_[1]), B, E, T_, D, 1, c_.causal);
        break;
      }
    }
  }

  // dln1 = d Mix / d ln1 applied to dmix; `scratch` holds at least B*T*max(2F,eD) elements.
  void token_mix_backward(const T* dmix, T* dln1, int B, T* scratch) {
    const int D = c_.d_model, T_ = c_.n_ctx, N = B * T_;
    const size_t ND = static_cast<size_t>(N) * D;
    switch (c_.variant) {
      case MixerVariant::Flat:
        break;
      case MixerVariant::Heads: {
        T* dmixed = scratch;
        T* dproj = scratch + ND;
        ops_.linear_backward(dmixed, s_.g(out_w_), s_.g(out_b_), dmix, mixed_, s_.p(out_w_), N, D, D);
        ops_.mix_backward(dproj, s_.g(mix_w_[0]), s_.g(mix_c_[0]), dmixed, proj_, s_.p(mix_w_[0]), B, T_, T_, D, c_.mixer_heads, c_.causal);
        ops_.linear_backward(dln1, s_.g(proj_w_), s_.g(proj_b_), dproj, ln1_, s_.p(proj_w_), N, D, D);
        break;
      }
      case MixerVariant::Parallel: {
        T* dpre = scratch;
        T* dbranch = scratch + ND;
        for (size_t j = 0; j < mix_w_.size(); ++j) {
          ops_.gelu_backward(dpre, dmix, branch_pre_[j], ND);
          ops_.mix_backward(j == 0 ? dln1 : dbranch, s_.g(mix_w_[j]), s_.g(mix_c_[j]), dpre, ln1_, s_.p(mix_w_[j]), B, T_, T_, D, 1, c_.causal);
          if (j > 0) ops_.add_inplace(dln1, dbranch, ND);
        }
        break;
      }
      case MixerVariant::Expanded: {
        const int E = c_.expansion * T_;
        T* dinner = scratch;  // [B,E,D]
        ops_.mix_backward(dinner, s_.g(mix_w_[1]), s_.g(mix_c_[1]), dmix, inner_act_, s_.p(mix_w_[1]), B, E, T_, D, 1, c_.causal);
        ops_.gelu_backward(dinner, dinner, inner_pre_, static_cast<size_t>(B) * E * D);
        ops_.mix_backward(dln1, s_.g(mix_w_[0]), s_.g(mix_c_[0]), dinner, ln1_, s_.p(mix_w_[0]), B, T_, E, D, 1, c_.causal);
        break;
      }
    }
  }

  const ModelConfig& c_;
  const ParamStore<T>& s_;
  Ops<T>& ops_;
  Acts<T> acts_;
  bool recompute_;       // ffn_state_ is the model's shared state, rebuilt in backward
  size_t ln1_w_, ln1_b_, ln2_w_, ln2_b_, fc_w_, fc_b_, pr_w_, pr_b_, proj_w_ = 0, proj_b_ = 0, out_w_ = 0, out_b_ = 0;
  std::vector<size_t> mix_w_, mix_c_;
  const T* x_ = nullptr;
  T *ln1_ = nullptr, *ln1_mean_, *ln1_rstd_, *mix_state_ = nullptr, *mix_out_ = nullptr, *x2_, *ln2_mean_, *ln2_rstd_, *ffn_state_;
  T *proj_ = nullptr, *mixed_ = nullptr, *inner_pre_ = nullptr, *inner_act_ = nullptr;
  std::vector<T*> branch_pre_;
};

// ------------------------------------------------------------------------------------------------
// Llama decoder layer; with `hybrid` the attention output a becomes a + Mix(a) (PAPER.md 1.5).
template <class T>
class LlamaBlock final : public Block<T> {
 public:
  LlamaBlock(const ModelConfig& c, int layer, ParamTable& t, const ParamStore<T>& s, Ops<T>& ops, int max_batch, bool hybrid,
             SharedBuffers<T> shared)
      : c_(c), s_(s), ops_(ops), acts_(ops), hybrid_(hybrid), recompute_(shared.ffn_state != nullptr), shared_attention_(shared.attention_state != nullptr) {
    const int D = c.d_model, T_ = c.n_ctx, F = c.ff_mult * D;
    const std::string pre = fmt::format("blocks.{}.", layer);
    const InitRules r = init_rules_for(c.init, c.kind);
    attn_norm_ = t.add(pre + "attn_norm.weight", {D}, InitKind::Ones);
    qkv_w_ = t.entries().size(); r.weight(t, pre + "attn.qkv.weight", {3 * D, D}, D);
    out_w_ = t.entries().size(); r.weight(t, pre + "attn.out.weight", {D, D}, D);
    if (hybrid) {
      // The transfixer's Conv1d is outside HF's _init_weights, so it keeps PyTorch's default init under "paper".
      const InitRules mr = c.init == InitScheme::Paper ? InitRules{false} : r;
      mix_w_ = t.entries().size(); mr.weight(t, pre + "mix.weight", {T_, T_}, T_, true);
      mix_c_ = t.entries().size(); mr.bias(t, pre + "mix.bias", {T_}, T_);
    }
    mlp_norm_ = t.add(pre + "mlp_norm.weight", {D}, InitKind::Ones);
    gu_w_ = t.entries().size(); r.weight(t, pre + "mlp.gate_up.weight", {2 * F, D}, D);
    down_w_ = t.entries().size(); r.weight(t, pre + "mlp.down.weight", {D, F}, F);

    const size_t rows = static_cast<size_t>(max_batch) * T_;
    rstd1_ = acts_.make(rows);
    att_state_ = shared_attention_ ? shared.attention_state : acts_.make(ops.self_attention_state_size(max_batch, T_, D, c.heads, /*prenorm=*/true));
    if (hybrid) {  // the mix's input o = Wo att is needed in backward; plain Llama never keeps it
      o_ = acts_.make(rows * D);
      mixo_ = acts_.make(rows * D);
    }
    x2_ = acts_.make(rows * D);
    rstd2_ = acts_.make(rows);
    ffn_state_ = recompute_ ? shared.ffn_state : acts_.make(ops.ffn_state_size(static_cast<int>(rows), D, F, FfnActivation::SwiGlu, /*prenorm=*/true));
  }

  void forward(const T* x, T* y, int B) override {
    const int D = c_.d_model, T_ = c_.n_ctx, F = c_.ff_mult * D, N = B * T_, H = c_.heads;
    const size_t ND = static_cast<size_t>(N) * D;
    if (hybrid_) {
      ops_.self_attention_forward(o_, att_state_, x, norm1(), s_.p(qkv_w_), nullptr, s_.p(out_w_), nullptr, nullptr, B, T_, D, H, /*rope=*/true);
      ops_.mix_forward(mixo_, o_, s_.p(mix_w_), s_.p(mix_c_), B, T_, T_, D, 1, true);
      ops_.add_inplace(mixo_, o_, ND);  // o + Mix(o)
      ops_.add(x2_, x, mixo_, ND);
    } else {  // x2 = x + Wo att(RMSNorm(x))
      ops_.self_attention_forward(x2_, att_state_, x, norm1(), s_.p(qkv_w_), nullptr, s_.p(out_w_), nullptr, x, B, T_, D, H, /*rope=*/true);
    }
    ops_.ffn_forward(y, ffn_state_, x2_, norm2(), s_.p(gu_w_), nullptr, s_.p(down_w_), nullptr, x2_, N, D, F, FfnActivation::SwiGlu);  // y = x2 + FFN(RMSNorm(x2))
    x_ = x;
  }

  size_t activation_elements() const override { return acts_.elements; }

  void backward(const T* dy, T* dx, int B, const Workspace<T>& ws) override {
    const int D = c_.d_model, T_ = c_.n_ctx, F = c_.ff_mult * D, N = B * T_, H = c_.heads;
    const size_t ND = static_cast<size_t>(N) * D;
    T* wide = ws.a;  // [N, max(2F, 4D)]
    T* mid = ws.b;   // [N, max(F, D)]
    T* dx2 = ws.c;   // [N, D]
    if (recompute_)  // rebuild this block's feed-forward state in the shared buffer (bit-identical)
      ops_.ffn_forward(nullptr, ffn_state_, x2_, norm2(), s_.p(gu_w_), nullptr, s_.p(down_w_), nullptr, nullptr, N, D, F, FfnActivation::SwiGlu);
    // mid takes the [N,F] activation gradient, wide the [N,2F] one
    ops_.ffn_backward(dx2, s_.g(gu_w_), nullptr, s_.g(down_w_), nullptr, dy, x2_, ffn_state_, norm2(dy), s_.p(gu_w_), nullptr, s_.p(down_w_), N, D, F,
                      FfnActivation::SwiGlu, mid, wide);  // dx2 = dy + d FFN(RMSNorm(x2)) / dx2
    const T* do_ = dx2;
    if (hybrid_) {  // d(o + Mix(o)) = dx2 + Mix^T dx2
      ops_.mix_backward(mid, s_.g(mix_w_), s_.g(mix_c_), dx2, o_, s_.p(mix_w_), B, T_, T_, D, 1, true);
      ops_.add_inplace(mid, dx2, ND);
      do_ = mid;
    }
    if (shared_attention_)  // the shared state holds the last block's values: rebuild this block's
      ops_.self_attention_forward(nullptr, att_state_, x_, norm1(), s_.p(qkv_w_), nullptr, s_.p(out_w_), nullptr, nullptr, B, T_, D, H, true);
    // dx = dx2 + d att(RMSNorm(x)) / dx
    ops_.self_attention_backward(dx, s_.g(qkv_w_), nullptr, s_.g(out_w_), nullptr, do_, x_, att_state_, norm1(dx2), s_.p(qkv_w_), s_.p(out_w_), B, T_, D,
                                 H, true, /*da=*/wide, /*dqkv=*/wide + ND);
  }

 private:
  // The two RMSNorms, applied inside the sublayer ops; dskip: the residual's gradient (backward)
  PreNorm<T> norm1(const T* dskip = nullptr) const { return {NormKind::RmsNorm, s_.p(attn_norm_), nullptr, nullptr, rstd1_, s_.g(attn_norm_), nullptr, dskip}; }
  PreNorm<T> norm2(const T* dskip = nullptr) const { return {NormKind::RmsNorm, s_.p(mlp_norm_), nullptr, nullptr, rstd2_, s_.g(mlp_norm_), nullptr, dskip}; }

  const ModelConfig& c_;
  const ParamStore<T>& s_;
  Ops<T>& ops_;
  Acts<T> acts_;
  bool hybrid_;
  bool recompute_;         // ffn_state_ is the model's shared state, rebuilt in backward
  bool shared_attention_;  // att_state_ too (a backend whose attention is fused keeps a small state per block)
  size_t attn_norm_, qkv_w_, out_w_, mix_w_ = 0, mix_c_ = 0, mlp_norm_, gu_w_, down_w_;
  const T* x_ = nullptr;
  T *rstd1_, *att_state_, *o_ = nullptr, *mixo_ = nullptr, *x2_, *rstd2_, *ffn_state_;
};

// ------------------------------------------------------------------------------------------------
// OpenAI GPT block (post-LayerNorm, biases everywhere, GELU MLP). Dropout is not modelled.
template <class T>
class GptBlock final : public Block<T> {
 public:
  GptBlock(const ModelConfig& c, int layer, ParamTable& t, const ParamStore<T>& s, Ops<T>& ops, int max_batch)
      : c_(c), s_(s), ops_(ops), acts_(ops) {
    const int D = c.d_model, T_ = c.n_ctx, F = c.ff_mult * D;
    const std::string pre = fmt::format("blocks.{}.", layer);
    const InitRules r = init_rules_for(c.init, ModelKind::Gpt);
    qkv_w_ = t.entries().size(); r.weight(t, pre + "attn.qkv.weight", {3 * D, D}, D);
    qkv_b_ = t.entries().size(); r.bias(t, pre + "attn.qkv.bias", {3 * D}, D);
    out_w_ = t.entries().size(); r.weight(t, pre + "attn.out.weight", {D, D}, D);
    out_b_ = t.entries().size(); r.bias(t, pre + "attn.out.bias", {D}, D);
    ln1_w_ = t.add(pre + "ln1.weight", {D}, InitKind::Ones);
    ln1_b_ = t.add(pre + "ln1.bias", {D}, InitKind::Zeros);
    fc_w_ = t.entries().size(); r.weight(t, pre + "mlp.fc.weight", {F, D}, D);
    fc_b_ = t.entries().size(); r.bias(t, pre + "mlp.fc.bias", {F}, D);
    pr_w_ = t.entries().size(); r.weight(t, pre + "mlp.proj.weight", {D, F}, F);
    pr_b_ = t.entries().size(); r.bias(t, pre + "mlp.proj.bias", {D}, F);
    ln2_w_ = t.add(pre + "ln2.weight", {D}, InitKind::Ones);
    ln2_b_ = t.add(pre + "ln2.bias", {D}, InitKind::Zeros);

    const size_t rows = static_cast<size_t>(max_batch) * T_;
    att_state_ = acts_.make(ops.self_attention_state_size(max_batch, T_, D, c.heads, /*prenorm=*/false));
    r1_ = acts_.make(rows * D);
    n_ = acts_.make(rows * D); mean1_ = acts_.make(rows); rstd1_ = acts_.make(rows);
    ffn_state_ = acts_.make(ops.ffn_state_size(static_cast<int>(rows), D, F, FfnActivation::Gelu, /*prenorm=*/false));
    r2_ = acts_.make(rows * D); mean2_ = acts_.make(rows); rstd2_ = acts_.make(rows);
  }

  void forward(const T* x, T* y, int B) override {
    const int D = c_.d_model, T_ = c_.n_ctx, F = c_.ff_mult * D, N = B * T_, H = c_.heads;
    ops_.self_attention_forward(r1_, att_state_, x, {}, s_.p(qkv_w_), s_.p(qkv_b_), s_.p(out_w_), s_.p(out_b_), x, B, T_, D, H, /*rope=*/false);  // r1 = x + Wo att
    ops_.layernorm_forward(n_, mean1_, rstd1_, r1_, s_.p(ln1_w_), s_.p(ln1_b_), N, D);
    ops_.ffn_forward(r2_, ffn_state_, n_, {}, s_.p(fc_w_), s_.p(fc_b_), s_.p(pr_w_), s_.p(pr_b_), n_, N, D, F, FfnActivation::Gelu);  // r2 = n + FFN
    ops_.layernorm_forward(y, mean2_, rstd2_, r2_, s_.p(ln2_w_), s_.p(ln2_b_), N, D);
    x_ = x;
  }

  size_t activation_elements() const override { return acts_.elements; }

  void backward(const T* dy, T* dx, int B, const Workspace<T>& ws) override {
    const int D = c_.d_model, T_ = c_.n_ctx, F = c_.ff_mult * D, N = B * T_, H = c_.heads;
    const size_t ND = static_cast<size_t>(N) * D;
    T* wide = ws.a;  // [N, max(F, 3D)]
    T* dr = ws.b;    // [N,D]
    T* dn = ws.c;    // [N,D]
    ops_.layernorm_backward(dr, s_.g(ln2_w_), s_.g(ln2_b_), dy, nullptr, r2_, s_.p(ln2_w_), mean2_, rstd2_, N, D);  // dr2
    ops_.ffn_backward(dn, s_.g(fc_w_), s_.g(fc_b_), s_.g(pr_w_), s_.g(pr_b_), dr, n_, ffn_state_, {}, s_.p(fc_w_), s_.p(fc_b_), s_.p(pr_w_), N, D, F,
                      FfnActivation::Gelu, wide, wide);
    ops_.add_inplace(dn, dr, ND);
    ops_.layernorm_backward(dr, s_.g(ln1_w_), s_.g(ln1_b_), dn, nullptr, r1_, s_.p(ln1_w_), mean1_, rstd1_, N, D);  // dr1
    ops_.self_attention_backward(dx, s_.g(qkv_w_), s_.g(qkv_b_), s_.g(out_w_), s_.g(out_b_), dr, x_, att_state_, {}, s_.p(qkv_w_), s_.p(out_w_), B, T_, D, H,
                                 false, /*da=*/dn, /*dqkv=*/wide);
    ops_.add_inplace(dx, dr, ND);
  }

 private:
  const ModelConfig& c_;
  const ParamStore<T>& s_;
  Ops<T>& ops_;
  Acts<T> acts_;
  size_t qkv_w_, qkv_b_, out_w_, out_b_, ln1_w_, ln1_b_, fc_w_, fc_b_, pr_w_, pr_b_, ln2_w_, ln2_b_;
  const T* x_ = nullptr;
  T *att_state_, *r1_, *n_, *mean1_, *rstd1_, *ffn_state_, *r2_, *mean2_, *rstd2_;
};

}  // namespace

template <class T>
std::unique_ptr<Block<T>> make_block(const ModelConfig& c, int layer, ParamTable& table, const ParamStore<T>& store, Ops<T>& ops, int max_batch,
                                     SharedBuffers<T> shared) {
  switch (c.kind) {
    case ModelKind::Mixer: return std::make_unique<MixerBlock<T>>(c, layer, table, store, ops, max_batch, shared);
    case ModelKind::Llama: return std::make_unique<LlamaBlock<T>>(c, layer, table, store, ops, max_batch, false, shared);
    case ModelKind::Hybrid: return std::make_unique<LlamaBlock<T>>(c, layer, table, store, ops, max_batch, true, shared);
    case ModelKind::Gpt: return std::make_unique<GptBlock<T>>(c, layer, table, store, ops, max_batch);
  }
  return nullptr;
}

template class Block<float>;
template class Block<double>;
template std::unique_ptr<Block<float>> make_block<float>(const ModelConfig&, int, ParamTable&, const ParamStore<float>&, Ops<float>&, int,
                                                         SharedBuffers<float>);
template std::unique_ptr<Block<double>> make_block<double>(const ModelConfig&, int, ParamTable&, const ParamStore<double>&, Ops<double>&, int,
                                                           SharedBuffers<double>);

}  // namespace mm
