// Model graph: embedding, blocks, final norm, head and loss; forward and backward side by side.
#include "model/model.h"

#include "core/error.h"
#include "ops/cpu_ops.h"

namespace mm {

template <class T>
Model<T>::Model(const ModelConfig& config, Ops<T>& ops, int max_batch, bool recompute) : config_(config), ops_(ops), max_batch_(max_batch) {
  const int D = config.d_model, T_ = config.n_ctx, V = config.vocab;
  const InitRules r = init_rules_for(config.init, config.kind);
  wte_ = table_.entries().size();
  r.embedding(table_, "wte.weight", {V, D});
  if (config.kind == ModelKind::Gpt) {
    wpe_ = table_.entries().size();
    r.embedding(table_, "wpe.weight", {T_, D});
  }
  store_.table = &table_;
  SharedBuffers<T> shared;
  const bool llama = config.kind == ModelKind::Llama || config.kind == ModelKind::Hybrid;
  if (recompute && max_batch > 0) {
    if (config.kind == ModelKind::Gpt)
      throw UsageError(fmt::format("--recompute is implemented for mixer, llama and hybrid blocks, not {}", config.descriptor()),
                       "drop --recompute for GPT models");
    const FfnActivation act = llama ? FfnActivation::SwiGlu : FfnActivation::Gelu;
    recompute_ffn_ = DeviceArray<T, T>(ops, ops.ffn_state_size(max_batch * T_, D, config.ff_mult * D, act, /*prenorm=*/true));
    if (llama && !ops.attention_is_fused(D, config.heads))  // a fused backend keeps a small state per block: not shared
      recompute_attention_ = DeviceArray<T, T>(ops, ops.self_attention_state_size(max_batch, T_, D, config.heads, /*prenorm=*/true));
    shared.ffn_state = recompute_ffn_.get();
    shared.attention_state = recompute_attention_.get();
  }
  // SharedBuffers::transient: the mixing output of the mixer variants other than flat (whose mixing op writes the residual sum itself)
  if (max_batch > 0 && config.kind == ModelKind::Mixer && config.variant != MixerVariant::Flat) {
    shared_transient_ = DeviceArray<T, T>(ops, static_cast<size_t>(max_batch) * T_ * D);
    shared.transient = shared_transient_.get();
  }
  for (int l = 0; l < config.n_layers; ++l) blocks_.push_back(make_block<T>(config_, l, table_, store_, ops, max_batch, shared));
  if (llama) final_norm_ = table_.add("final_norm.weight", {D}, InitKind::Ones);
  if (!config.tied) {
    head_ = table_.entries().size();
    r.weight(table_, "lm_head.weight", {V, D}, D);
  }

  if (max_batch == 0) return;  // layout only
  params_ = DeviceArray<T, T>(ops, table_.total());
  grads_ = DeviceArray<T, T>(ops, table_.total());
  store_.params = params_.get();
  store_.grads = grads_.get();

  const size_t rows = static_cast<size_t>(max_batch) * T_;
  tokens_ = DeviceArray<int32_t, T>(ops, rows);
  targets_ = DeviceArray<int32_t, T>(ops, rows);
  for (int l = 0; l <= config.n_layers; ++l) resid_.emplace_back(ops, rows * D);
  if (final_norm_ != SIZE_MAX) {
    final_ = DeviceArray<T, T>(ops, rows * D);
    final_rstd_ = DeviceArray<T, T>(ops, rows);
  }
  logits_ = DeviceArray<T, T>(ops, rows * V);
  losses_ = DeviceArray<T, T>(ops, rows);
  loss_scale_ = DeviceArray<T, T>(ops, 1);
  dresid_a_ = DeviceArray<T, T>(ops, rows * D);
  dresid_b_ = DeviceArray<T, T>(ops, rows * D);
  const auto widths = Block<T>::scratch_widths(config);
  ws_a_ = DeviceArray<T, T>(ops, rows * widths.a);
  ws_b_ = DeviceArray<T, T>(ops, rows * widths.b);
  ws_c_ = DeviceArray<T, T>(ops, rows * widths.c);
}

template <class T>
size_t Model<T>::activation_bytes_per_sequence() const {
  if (max_batch_ == 0) return 0;
  size_t elements = 0;
  for (const auto& block : blocks_) elements += block->activation_elements();
  for (const auto& r : resid_) elements += r.size();
  for (const DeviceArray<T, T>* a : {&final_, &final_rstd_, &logits_, &losses_, &dresid_a_, &dresid_b_, &ws_a_, &ws_b_, &ws_c_, &recompute_ffn_,
                                   &recompute_attention_, &shared_transient_})
    elements += a->size();
  return elements * sizeof(T) / static_cast<size_t>(max_batch_);
}

template <class T>
ParamTable Model<T>::layout(const ModelConfig& config) {
  CpuOps<T> ops;
  return Model<T>(config, ops, 0).params();
}

template <class T>
void Model<T>::init_params(uint64_t seed) {
  std::vector<T> host(table_.total());
  Rng rng(seed);
  table_.initialise(host.data(), rng);
  ops_.to_device(params_.get(), host.data(), host.size() * sizeof(T));
}

template <class T>
void Model<T>::load_params(const std::vector<T>& host_in) {
  check(host_in.size() == table_.total(), fmt::format("parameter count {} does not match the model's {}", host_in.size(), table_.total()),
        "the checkpoint was written for another model configuration");
  std::vector<T> host = host_in;
  table_.apply_masks(host.data());
  ops_.to_device(params_.get(), host.data(), host.size() * sizeof(T));
}

template <class T>
std::vector<T> Model<T>::save_params() {
  std::vector<T> host(table_.total());
  ops_.to_host(host.data(), params_.get(), host.size() * sizeof(T));
  return host;
}

template <class T>
void Model<T>::upload_tokens(const int32_t* tokens, int B) {
  check(B > 0 && B <= max_batch_, fmt::format("batch {} exceeds the model's maximum {}", B, max_batch_), "lower --batch");
  const int V = config_.vocab, N = B * config_.n_ctx;
  for (int i = 0; i < N; ++i)  // not check(): see error.h
    if (tokens[i] < 0 || tokens[i] >= V)
      fail(fmt::format("token id {} is outside the vocabulary of {}", tokens[i], V), "the data was prepared with another tokenizer; check --data against the model's vocab");
  ops_.to_device(tokens_.get(), tokens, static_cast<size_t>(N) * sizeof(int32_t));
  last_batch_ = B;
}

template <class T>
const T* Model<T>::encode(const int32_t* tokens, int B) {
  upload_tokens(tokens, B);
  return encode_uploaded(B);
}

template <class T>
const T* Model<T>::encode_uploaded(int B) {
  const int D = config_.d_model, T_ = config_.n_ctx, N = B * T_;
  ops_.embedding_forward(resid_[0].get(), tokens_.get(), store_.p(wte_), wpe_ != SIZE_MAX ? store_.p(wpe_) : nullptr, N, T_, D);
  for (int l = 0; l < config_.n_layers; ++l) blocks_[l]->forward(resid_[l].get(), resid_[l + 1].get(), B);
  const T* top = resid_[config_.n_layers].get();
  if (final_norm_ != SIZE_MAX) {
    ops_.rmsnorm_forward(final_.get(), final_rstd_.get(), top, store_.p(final_norm_), N, D);
    top = final_.get();
  }
  return top;
}

template <class T>
int64_t Model<T>::count_targets(const int32_t* targets, int B) const {
  int64_t count = 0;
  for (int i = 0; i < B * config_.n_ctx; ++i) count += targets[i] >= 0;
  return count;
}

template <class T>
void Model<T>::head_forward(const T* top, int B) {
  ops_.linear_forward(logits_.get(), top, store_.p(head_param()), nullptr, B * config_.n_ctx, config_.d_model, config_.vocab);
}

template <class T>
void Model<T>::loss(const T* top, int B, bool for_backward) {
  const int V = config_.vocab, N = B * config_.n_ctx;
  if (for_backward) {  // the backend keeps dlogits in logits_ in its own form, for backward(); the scale 1/n_targets is in loss_scale_
    ops_.head_loss_forward(losses_.get(), logits_.get(), top, store_.p(head_param()), targets_.get(), N, config_.d_model, V, loss_scale_.get());
    return;
  }
  head_forward(top, B);
  ops_.cross_entropy(losses_.get(), nullptr, logits_.get(), targets_.get(), N, V, nullptr);
}

template <class T>
void Model<T>::upload_targets(const int32_t* targets, int B) {
  ops_.to_device(targets_.get(), targets, static_cast<size_t>(B) * config_.n_ctx * sizeof(int32_t));
  const T scale = static_cast<T>(1.0 / static_cast<double>(n_targets_));  // read by the loss op from device memory, so a recording
  ops_.to_device(loss_scale_.get(), &scale, sizeof(T));                   // serves every target count
}

template <class T>
double Model<T>::read_loss(int B) {
  std::vector<T> losses(static_cast<size_t>(B) * config_.n_ctx);
  ops_.to_host(losses.data(), losses_.get(), losses.size() * sizeof(T));
  double total = 0;
  for (T value : losses) total += value;
  return total / static_cast<double>(n_targets_);
}

template <class T>
double Model<T>::forward(const int32_t* tokens, const int32_t* targets, int B, bool for_backward) {
  const T* top = encode(tokens, B);
  n_targets_ = targets ? count_targets(targets, B) : 0;
  if (n_targets_ == 0) {  // logits only
    head_forward(top, B);
    return 0.0;
  }
  upload_targets(targets, B);
  loss(top, B, for_backward);
  return read_loss(B);
}

template <class T>
double Model<T>::train_step(const int32_t* tokens, const int32_t* targets, int B) {
  upload_tokens(tokens, B);
  n_targets_ = count_targets(targets, B);
  if (n_targets_ == 0) {  // nothing to learn from
    zero_grad();
    return 0.0;
  }
  upload_targets(targets, B);
  auto issue = [this, B] {
    zero_grad();
    loss(encode_uploaded(B), B, true);
    backward();
  };
  if (step_stopwatch_) step_stopwatch_->start();
  run_step(issue, B);
  if (step_stopwatch_) step_stopwatch_->stop();
  return read_loss(B);
}

template <class T>
void Model<T>::run_step(const std::function<void()>& issue, int batch) {
  if (ops_.can_record()) {
    if (step_recording_ && recorded_batch_ == batch) {
      step_recording_->replay();
      return;
    }
    if (warm_batch_ == batch && !recording_failed_) {  // the direct run before this one sized every scratch buffer
      step_recording_ = ops_.record(issue);
      recording_failed_ = step_recording_ == nullptr;
      if (step_recording_) {
        recorded_batch_ = batch;
        step_recording_->replay();
        return;
      }
    }
    warm_batch_ = batch;
  }
  issue();
}

template <class T>
void Model<T>::backward() {
  const int B = last_batch_, D = config_.d_model, V = config_.vocab, N = B * config_.n_ctx;
  const T* top = final_norm_ != SIZE_MAX ? final_.get() : resid_[config_.n_layers].get();
  T* head = store_.p(head_param());
  T* dhead = store_.g(head_param());
  ops_.head_loss_backward(dresid_b_.get(), dhead, logits_.get(), top, head, N, D, V);  // logits_ holds dlogits
  backward_encode(dresid_b_.get(), B);
}

template <class T>
void Model<T>::backward_encode(const T* dhidden, int B) {
  const int D = config_.d_model, T_ = config_.n_ctx, V = config_.vocab, N = B * T_;
  // The residual stream's gradient goes back and forth between dresid_a_ and dresid_b_, starting from
  // dhidden, which may be one of them (Model::backward hands the head's gradient over in dresid_b_).
  auto other = [this](const T* d) { return d == dresid_a_.get() ? dresid_b_.get() : dresid_a_.get(); };
  const T* dy = dhidden;
  if (final_norm_ != SIZE_MAX) {
    T* out = other(dy);
    ops_.rmsnorm_backward(out, store_.g(final_norm_), dy, nullptr, resid_[config_.n_layers].get(), store_.p(final_norm_), final_rstd_.get(), N, D);
    dy = out;
  }
  Workspace<T> ws{ws_a_.get(), ws_b_.get(), ws_c_.get()};
  for (int l = config_.n_layers - 1; l >= 0; --l) {
    T* out = other(dy);
    blocks_[l]->backward(dy, out, B, ws);
    dy = out;
  }
  ops_.embedding_backward(store_.g(wte_), wpe_ != SIZE_MAX ? store_.g(wpe_) : nullptr, dy, tokens_.get(), N, T_, D, V);
}

template <class T>
const T* Model<T>::forward_embeddings(const T* emb, int B, int layers) {
  check(B > 0 && B <= max_batch_ && layers >= 0 && layers <= config_.n_layers, fmt::format("bad probe: batch {} layers {}", B, layers),
        "use --layer between 0 and the model's number of layers");
  const int D = config_.d_model, T_ = config_.n_ctx, N = B * T_;
  ops_.copy(resid_[0].get(), emb, static_cast<size_t>(N) * D);
  if (wpe_ != SIZE_MAX) {  // GPT: add the learned positions, looked up with position ids as tokens
    std::vector<int32_t> positions(N);
    for (int n = 0; n < N; ++n) positions[n] = n % T_;
    ops_.to_device(tokens_.get(), positions.data(), positions.size() * sizeof(int32_t));
    ops_.embedding_forward(dresid_a_.get(), tokens_.get(), store_.p(wpe_), nullptr, N, T_, D);
    ops_.add_inplace(resid_[0].get(), dresid_a_.get(), static_cast<size_t>(N) * D);
  }
  for (int l = 0; l < layers; ++l) blocks_[l]->forward(resid_[l].get(), resid_[l + 1].get(), B);
  last_batch_ = B;
  return resid_[layers].get();
}

template <class T>
void Model<T>::backward_embeddings(const T* dout, T* demb, int B, int layers) {
  const size_t n = static_cast<size_t>(B) * config_.n_ctx * config_.d_model;
  ops_.copy(dresid_a_.get(), dout, n);
  Workspace<T> ws{ws_a_.get(), ws_b_.get(), ws_c_.get()};
  for (int l = layers - 1; l >= 0; --l) {
    blocks_[l]->backward(dresid_a_.get(), dresid_b_.get(), B, ws);
    std::swap(dresid_a_, dresid_b_);
  }
  ops_.copy(demb, dresid_a_.get(), n);
}

template class Model<float>;
template class Model<double>;

}  // namespace mm
