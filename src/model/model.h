// A language model of any kind: token embedding (+ learned positions for GPT) -> blocks -> final norm
// (Llama/hybrid only) -> lm_head (tied for GPT) -> fused softmax cross-entropy. Written once against
// Ops<T>; the same code runs on the CPU reference (float, double) and on CUDA.
#pragma once
#include <memory>
#include <vector>

#include "model/blocks.h"
#include "model/config.h"
#include "model/params.h"
#include "ops/ops.h"

namespace mm {

template <class T>
class Model {
 public:
  // max_batch sizes the activation buffers; 0 builds the parameter layout only (no memory).
  // recompute (mixer, llama, hybrid): feed-forward activations (and Llama's attention state where it is large)
  // are rebuilt in backward in buffers shared by all blocks instead of stored per block; gradients are
  // bit-identical and these activations take one block's memory instead of L blocks'.
  Model(const ModelConfig& config, Ops<T>& ops, int max_batch, bool recompute = false);
  // The parameter table of a configuration, without allocating anything.
  static ParamTable layout(const ModelConfig& config);

  const ModelConfig& config() const { return config_; }
  const ParamTable& params() const { return table_; }
  size_t num_params() const { return table_.total(); }
  Ops<T>& ops() { return ops_; }
  int max_batch() const { return max_batch_; }

  T* param_data() { return params_.get(); }
  T* grad_data() { return grads_.get(); }
  void zero_grad() { ops_.zero(grads_.get(), table_.total()); }

  // Initialises every parameter from `seed` (host-side draws, identical for every backend).
  void init_params(uint64_t seed);
  void load_params(const std::vector<T>& host);   // table_.total() values, upper triangles masked
  std::vector<T> save_params();                    // host copy

  // tokens, targets: host arrays [B, n_ctx]; targets < 0 are ignored. Returns the mean loss over the
  // counted targets (0 when targets is null). With `for_backward` the logits buffer is overwritten by
  // d(mean loss)/d(logits) in the backend's form (Ops::head_loss_forward), ready for backward().
  double forward(const int32_t* tokens, const int32_t* targets, int B, bool for_backward = false);
  // Accumulates parameter gradients of the last forward's mean loss into grad_data().
  void backward();
  // One training step's device work: zero_grad(), forward(tokens, targets, B, true), backward();
  // returns the mean loss. Where the backend records (CUDA graphs), the step's device work is recorded
  // on the second step with the same batch size and replayed from then on: one launch instead of
  // hundreds, the same kernels and arguments (bit-identical results). The target count varies with
  // padding; its loss scale reaches the recording through device memory (loss_scale_).
  double train_step(const int32_t* tokens, const int32_t* targets, int B);
  bool step_recorded() const { return step_recording_ != nullptr; }
  // Marks the start and end of each train_step's device work (zero_grad, forward, backward; not the
  // uploads or the loss read) on `stopwatch` (nullptr: off). For bench's device_ms.
  void time_steps_with(Stopwatch* stopwatch) { step_stopwatch_ = stopwatch; }
  int64_t last_target_count() const { return n_targets_; }
  // Bytes of activations, gradients of activations and scratch held per sequence of the max batch
  // (parameters, gradients and optimizer state excluded).
  size_t activation_bytes_per_sequence() const;

  // Input-representation probes (maskmix invert): run blocks [0, layers) on input embeddings `emb`
  // [B,T,D] (backend memory; GPT's learned positions are added inside), and backpropagate a gradient of
  // block `layers`'s output back to `emb`. Parameter gradients also accumulate (callers ignore them).
  const T* forward_embeddings(const T* emb, int B, int layers);
  void backward_embeddings(const T* dout, T* demb, int B, int layers);
  const T* token_embeddings() { return store_.p(wte_); }  // [vocab, D]

  // Hidden states for embedding/retrieval: embedding -> blocks -> final norm (Llama/hybrid), [B,T,D]
  // in backend memory; and the backward of a gradient on them into the parameter gradients.
  const T* encode(const int32_t* tokens, int B);
  void backward_encode(const T* dhidden, int B);
  int64_t count_targets(const int32_t* targets, int B) const;

  T* logits() { return logits_.get(); }                 // [B, n_ctx, vocab] after forward without backward

 private:
  ModelConfig config_;
  Ops<T>& ops_;
  int max_batch_;
  ParamTable table_;
  ParamStore<T> store_;
  size_t wte_, wpe_ = SIZE_MAX, final_norm_ = SIZE_MAX, head_ = SIZE_MAX;
  std::vector<std::unique_ptr<Block<T>>> blocks_;
  DeviceArray<T, T> params_, grads_;
  DeviceArray<int32_t, T> tokens_, targets_;
  std::vector<DeviceArray<T, T>> resid_;  // L+1 buffers [B,T,D]
  DeviceArray<T, T> final_, final_rstd_, logits_, losses_, loss_scale_, dresid_a_, dresid_b_, ws_a_, ws_b_, ws_c_;
  DeviceArray<T, T> recompute_ffn_, recompute_attention_;  // SharedBuffers for the blocks (empty unless recompute)
  DeviceArray<T, T> shared_transient_;                      // SharedBuffers::transient (empty where no block needs it)
  int last_batch_ = 0;
  int64_t n_targets_ = 0;
  // train_step's recording, the batch size it was made for, and the last batch size run directly
  std::unique_ptr<Recording> step_recording_;
  int recorded_batch_ = 0, warm_batch_ = 0;
  bool recording_failed_ = false;
  Stopwatch* step_stopwatch_ = nullptr;

  void upload_tokens(const int32_t* tokens, int B);  // checks the ids, copies them to the device
  const T* encode_uploaded(int B);                    // embedding -> blocks -> final norm
  size_t head_param() const { return config_.tied ? wte_ : head_; }  // the lm head's weights (tied: the token embedding)
  void head_forward(const T* top, int B);             // logits_ = lm head of top [B,T,D]
  void loss(const T* top, int B, bool for_backward);  // lm head and cross-entropy of the uploaded targets
  // Runs one step's ops `issue`: replays the recording made for `batch` where there is one, records it
  // on the second direct run at a batch size, else runs them directly.
  void run_step(const std::function<void()>& issue, int batch);
  void upload_targets(const int32_t* targets, int B);  // and the loss scale 1/n_targets_
  double read_loss(int B);                            // mean of the per-token losses
};

}  // namespace mm
