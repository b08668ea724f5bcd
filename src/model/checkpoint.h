// Checkpoints: weights as safetensors (PyTorch-loadable; config, init, tokenizer hash and format version
// in __metadata__), and the training state in a second safetensors file (AdamW moments, step, data
// cursor). Both are written atomically.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/batcher.h"
#include "model/config.h"
#include "model/params.h"

namespace mm {

constexpr int kCheckpointVersion = 1;

struct Checkpoint {
  ModelConfig config;
  std::map<std::string, std::string> metadata;
  std::vector<float> params;  // flat, in the model's ParamTable order
};

struct TrainState {
  int64_t step = 0;         // optimizer steps done
  int64_t total_steps = 0;  // the schedule's length
  BatchCursor cursor;
  double tokens_seen = 0;
  double elapsed_s = 0;     // training wall-clock so far (for equal-time comparisons)
  std::vector<float> adam_m, adam_v;
};

void save_weights(const std::string& path, const ModelConfig& config, const ParamTable& table, const std::vector<float>& params,
                  std::map<std::string, std::string> metadata);
Checkpoint load_weights(const std::string& path);

void save_train_state(const std::string& path, const TrainState& state);
TrainState load_train_state(const std::string& path, size_t n_params);

}  // namespace mm
