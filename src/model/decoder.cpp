// Incremental decoder and sampling.
#include "model/decoder.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "ops/activations.h"
#include "ops/layernorm.h"
#include "ops/linear.h"
#include "ops/rmsnorm.h"
#include "ops/rope.h"

namespace mm {

IncrementalDecoder::IncrementalDecoder(const ModelConfig& config, const ParamTable& table, const std::vector<float>& params)
    : c_(config), table_(table), params_(params) {
  check(config.causal, "incremental decoding needs a causal model", "bidirectional mixers cannot generate");
  const size_t T = c_.n_ctx, D = c_.d_model;
  const size_t inner = c_.variant == MixerVariant::Expanded ? c_.expansion : 1;
  for (int l = 0; l < c_.n_layers; ++l) {
    cache_a_.emplace_back(T * D * inner, 0.0f);
    cache_b_.emplace_back(T * D, 0.0f);
    cache_c_.emplace_back(T * D, 0.0f);
  }
}

const float* IncrementalDecoder::p(const std::string& name) const {
  for (const ParamInfo& info : table_.entries())
    if (info.name == name) return params_.data() + info.offset;
  fail(fmt::format("parameter '{}' is missing", name), "the checkpoint does not match its model descriptor");
}

void IncrementalDecoder::mix_row(float* out, const float* w, const float* bias, const std::vector<float>& rows, int t, int Ti, int D, int groups) const {
  const int Dg = D / groups, To = c_.n_ctx;
  for (int g = 0; g < groups; ++g) {
    const float* wr = w + (static_cast<size_t>(g) * To + t) * Ti;  // row t of group g's [To, Ti] matrix
    for (int f = 0; f < Dg; ++f) out[g * Dg + f] = bias ? bias[static_cast<size_t>(g) * To + t] : 0.0f;
    for (int j = 0; j <= t && j < Ti; ++j)
      for (int f = 0; f < Dg; ++f) out[g * Dg + f] += wr[j] * rows[static_cast<size_t>(j) * D + g * Dg + f];
  }
}

void IncrementalDecoder::mixer_block(int l, float* x) {
  const int D = c_.d_model, F = c_.ff_mult * D, t = position_;
  const std::string pre = fmt::format("blocks.{}.", l);
  std::vector<float> h(D), m(D, 0.0f), tmp(D), mean(1), rstd(1);
  cpu::layernorm_forward(h.data(), mean.data(), rstd.data(), x, p(pre + "ln1.weight"), p(pre + "ln1.bias"), 1, D);
  std::vector<float>& cache = cache_a_[l];
  switch (c_.variant) {
    case MixerVariant::Flat:
      std::copy(h.begin(), h.end(), cache.begin() + static_cast<size_t>(t) * D);
      mix_row(m.data(), p(pre + "mix.weight"), p(pre + "mix.bias"), cache, t, c_.n_ctx, D, 1);
      break;
    case MixerVariant::Heads:
      cpu::linear_forward(cache.data() + static_cast<size_t>(t) * D, h.data(), p(pre + "mix.proj.weight"), p(pre + "mix.proj.bias"), 1, D, D);
      mix_row(tmp.data(), p(pre + "mix.weight"), p(pre + "mix.bias"), cache, t, c_.n_ctx, D, c_.mixer_heads);
      cpu::linear_forward(m.data(), tmp.data(), p(pre + "mix.out.weight"), p(pre + "mix.out.bias"), 1, D, D);
      break;
    case MixerVariant::Parallel:
      std::copy(h.begin(), h.end(), cache.begin() + static_cast<size_t>(t) * D);
      for (int j = 0; j < c_.parallel; ++j) {
        mix_row(tmp.data(), p(pre + fmt::format("mix.{}.weight", j)), p(pre + fmt::format("mix.{}.bias", j)), cache, t, c_.n_ctx, D, 1);
        cpu::gelu_forward(tmp.data(), tmp.data(), D);
        for (int d = 0; d < D; ++d) m[d] += tmp[d];
      }
      break;
    case MixerVariant::Expanded: {
      // inner row t reads h rows 0..t; output row t reads inner rows 0..t (the masks make this exact)
      std::copy(h.begin(), h.end(), cache.begin() + static_cast<size_t>(t) * D);
      std::vector<float>& inner = cache_b_[l];
      const int E = c_.expansion * c_.n_ctx;
      const float* w_in = p(pre + "mix.in.weight");
      const float* c_in = p(pre + "mix.in.bias");
      for (int d = 0; d < D; ++d) tmp[d] = c_in[t];
      for (int j = 0; j <= t; ++j)
        for (int d = 0; d < D; ++d) tmp[d] += w_in[static_cast<size_t>(t) * c_.n_ctx + j] * cache[static_cast<size_t>(j) * D + d];
      cpu::gelu_forward(inner.data() + static_cast<size_t>(t) * D, tmp.data(), D);
      mix_row(m.data(), p(pre + "mix.out.weight"), p(pre + "mix.out.bias"), inner, t, E, D, 1);
      break;
    }
  }
  for (int d = 0; d < D; ++d) x[d] += m[d];
  std::vector<float> fc(F), g(F), y(D);
  cpu::layernorm_forward(h.data(), mean.data(), rstd.data(), x, p(pre + "ln2.weight"), p(pre + "ln2.bias"), 1, D);
  cpu::linear_forward(fc.data(), h.data(), p(pre + "ff.fc.weight"), p(pre + "ff.fc.bias"), 1, D, F);
  cpu::gelu_forward(g.data(), fc.data(), F);
  cpu::linear_forward(y.data(), g.data(), p(pre + "ff.proj.weight"), p(pre + "ff.proj.bias"), 1, F, D);
  for (int d = 0; d < D; ++d) x[d] += y[d];
}

void IncrementalDecoder::transformer_block(int l, float* x) {
  const int D = c_.d_model, F = c_.ff_mult * D, H = c_.heads, Dh = D / H, t = position_;
  const bool gpt = c_.kind == ModelKind::Gpt, hybrid = c_.kind == ModelKind::Hybrid;
  const std::string pre = fmt::format("blocks.{}.", l);
  std::vector<float> h(D), qkv(3 * D), att(D, 0.0f), o(D), rstd(1), mean(1);
  if (gpt) {
    cpu::linear_forward(qkv.data(), x, p(pre + "attn.qkv.weight"), p(pre + "attn.qkv.bias"), 1, D, 3 * D);
  } else {
    cpu::rmsnorm_forward(h.data(), rstd.data(), x, p(pre + "attn_norm.weight"), 1, D);
    cpu::linear_forward(qkv.data(), h.data(), p(pre + "attn.qkv.weight"), static_cast<const float*>(nullptr), 1, D, 3 * D);
    cpu::rope_rotate_row(qkv.data(), t, D, H, 1.0);
    cpu::rope_rotate_row(qkv.data() + D, t, D, H, 1.0);
  }
  std::vector<float>&K = cache_a_[l], &V = cache_b_[l];
  std::copy(qkv.begin() + D, qkv.begin() + 2 * D, K.begin() + static_cast<size_t>(t) * D);
  std::copy(qkv.begin() + 2 * D, qkv.end(), V.begin() + static_cast<size_t>(t) * D);
  const double scale = 1.0 / std::sqrt(static_cast<double>(Dh));
  std::vector<double> w(t + 1);
  for (int hh = 0; hh < H; ++hh) {
    double maxv = -INFINITY;
    for (int j = 0; j <= t; ++j) {
      double s = 0;
      for (int d = 0; d < Dh; ++d) s += static_cast<double>(qkv[hh * Dh + d]) * K[static_cast<size_t>(j) * D + hh * Dh + d];
      w[j] = s * scale;
      maxv = std::max(maxv, w[j]);
    }
    double sum = 0;
    for (int j = 0; j <= t; ++j) sum += (w[j] = std::exp(w[j] - maxv));
    for (int d = 0; d < Dh; ++d) {
      double acc = 0;
      for (int j = 0; j <= t; ++j) acc += w[j] / sum * V[static_cast<size_t>(j) * D + hh * Dh + d];
      att[hh * Dh + d] = static_cast<float>(acc);
    }
  }
  cpu::linear_forward(o.data(), att.data(), p(pre + "attn.out.weight"), gpt ? p(pre + "attn.out.bias") : static_cast<const float*>(nullptr), 1, D, D);
  if (hybrid) {  // a + Mix(a) over the cached attention outputs
    std::copy(o.begin(), o.end(), cache_c_[l].begin() + static_cast<size_t>(t) * D);
    std::vector<float> m(D);
    mix_row(m.data(), p(pre + "mix.weight"), p(pre + "mix.bias"), cache_c_[l], t, c_.n_ctx, D, 1);
    for (int d = 0; d < D; ++d) o[d] += m[d];
  }
  if (gpt) {  // post-LN: n = LN1(x + o); y = LN2(n + MLP(n))
    std::vector<float> r(D), n(D), fc(F), g(F), y(D);
    for (int d = 0; d < D; ++d) r[d] = x[d] + o[d];
    cpu::layernorm_forward(n.data(), mean.data(), rstd.data(), r.data(), p(pre + "ln1.weight"), p(pre + "ln1.bias"), 1, D);
    cpu::linear_forward(fc.data(), n.data(), p(pre + "mlp.fc.weight"), p(pre + "mlp.fc.bias"), 1, D, F);
    cpu::gelu_forward(g.data(), fc.data(), F);
    cpu::linear_forward(y.data(), g.data(), p(pre + "mlp.proj.weight"), p(pre + "mlp.proj.bias"), 1, F, D);
    for (int d = 0; d < D; ++d) r[d] = n[d] + y[d];
    cpu::layernorm_forward(x, mean.data(), rstd.data(), r.data(), p(pre + "ln2.weight"), p(pre + "ln2.bias"), 1, D);
    return;
  }
  for (int d = 0; d < D; ++d) x[d] += o[d];
  std::vector<float> gu(2 * F), s(F), y(D);
  cpu::rmsnorm_forward(h.data(), rstd.data(), x, p(pre + "mlp_norm.weight"), 1, D);
  cpu::linear_forward(gu.data(), h.data(), p(pre + "mlp.gate_up.weight"), static_cast<const float*>(nullptr), 1, D, 2 * F);
  cpu::swiglu_forward(s.data(), gu.data(), 1, F);
  cpu::linear_forward(y.data(), s.data(), p(pre + "mlp.down.weight"), static_cast<const float*>(nullptr), 1, F, D);
  for (int d = 0; d < D; ++d) x[d] += y[d];
}

std::vector<float> IncrementalDecoder::step(int32_t token) {
  check(position_ < c_.n_ctx, fmt::format("the context window of {} tokens is full", c_.n_ctx), "use a shorter prompt or fewer --max-tokens");
  check(token >= 0 && token < c_.vocab, fmt::format("token {} is outside the vocabulary", token), "the tokenizer does not match the model");
  const int D = c_.d_model;
  std::vector<float> x(p("wte.weight") + static_cast<size_t>(token) * D, p("wte.weight") + static_cast<size_t>(token + 1) * D);
  if (c_.kind == ModelKind::Gpt)
    for (int d = 0; d < D; ++d) x[d] += p("wpe.weight")[static_cast<size_t>(position_) * D + d];
  for (int l = 0; l < c_.n_layers; ++l) {
    if (c_.kind == ModelKind::Mixer) mixer_block(l, x.data());
    else transformer_block(l, x.data());
  }
  if (c_.kind == ModelKind::Llama || c_.kind == ModelKind::Hybrid) {
    std::vector<float> normed(D), rstd(1);
    cpu::rmsnorm_forward(normed.data(), rstd.data(), x.data(), p("final_norm.weight"), 1, D);
    x = normed;
  }
  std::vector<float> logits(c_.vocab);
  cpu::linear_forward(logits.data(), x.data(), c_.tied ? p("wte.weight") : p("lm_head.weight"), static_cast<const float*>(nullptr), 1, D, c_.vocab);
  ++position_;
  return logits;
}

int32_t sample_token(const std::vector<float>& logits, double temperature, int top_k, double top_p, Rng& rng) {
  const int V = static_cast<int>(logits.size());
  if (temperature <= 0) return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  std::vector<int> ids(V);
  std::iota(ids.begin(), ids.end(), 0);
  std::sort(ids.begin(), ids.end(), [&](int a, int b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
  const int keep = top_k > 0 ? std::min(top_k, V) : V;
  std::vector<double> probs(keep);
  double sum = 0;
  for (int i = 0; i < keep; ++i) sum += (probs[i] = std::exp((logits[ids[i]] - logits[ids[0]]) / temperature));
  int cut = keep;
  double mass = 0;
  for (int i = 0; i < keep; ++i) {
    mass += probs[i] / sum;
    if (mass >= top_p) {
      cut = i + 1;
      break;
    }
  }
  double total = 0;
  for (int i = 0; i < cut; ++i) total += probs[i];
  double r = rng.uniform() * total;
  for (int i = 0; i < cut; ++i) {
    r -= probs[i];
    if (r <= 0) return ids[i];
  }
  return ids[cut - 1];
}

}  // namespace mm
