// Checkpoint read/write with validation of every tensor against the model's parameter table.
#include "model/checkpoint.h"

#include "core/error.h"
#include "core/safetensors.h"
#include "model/model.h"

namespace mm {

namespace {
constexpr const char* kWeightsFormat = "maskmix-weights";
constexpr const char* kStateFormat = "maskmix-train-state";

std::string meta_at(const SafetensorsFile& file, const std::string& key, const std::string& path) {
  auto it = file.metadata.find(key);
  if (it == file.metadata.end())
    fail(fmt::format("{}: checkpoint metadata lacks '{}'", path, key), "this file was not written by maskmix (or by an incompatible version)");
  return it->second;
}

void check_format(const SafetensorsFile& file, const std::string& path, const char* format) {
  if (meta_at(file, "format", path) != format)
    fail(fmt::format("{}: is a '{}' file, expected '{}'", path, meta_at(file, "format", path), format), "pass the right file of the run folder");
  if (meta_at(file, "format_version", path) != std::to_string(kCheckpointVersion))
    fail(fmt::format("{}: checkpoint format version {} but this maskmix reads {}", path, meta_at(file, "format_version", path), kCheckpointVersion),
         "use the maskmix version that wrote it");
}
}  // namespace

void save_weights(const std::string& path, const ModelConfig& config, const ParamTable& table, const std::vector<float>& params,
                  std::map<std::string, std::string> metadata) {
  SafetensorsFile file;
  file.metadata = std::move(metadata);
  file.metadata["format"] = kWeightsFormat;
  file.metadata["format_version"] = std::to_string(kCheckpointVersion);
  file.metadata["model"] = config.descriptor();
  file.metadata["init"] = init_name(config.init);
  for (const ParamInfo& p : table.entries()) file.tensors.push_back(make_tensor(p.name, DType::F32, p.shape, params.data() + p.offset));
  write_safetensors(path, file);
}

Checkpoint load_weights(const std::string& path) {
  SafetensorsFile file = read_safetensors(path);
  check_format(file, path, kWeightsFormat);
  Checkpoint ckpt;
  ckpt.metadata = file.metadata;
  ckpt.config = ModelConfig::parse(meta_at(file, "model", path));
  ckpt.config.init = parse_init(meta_at(file, "init", path));
  const ParamTable table = Model<float>::layout(ckpt.config);
  ckpt.params.assign(table.total(), 0.0f);
  for (const ParamInfo& p : table.entries()) {
    const TensorEntry& t = file.at(p.name, path);
    if (t.dtype != DType::F32 || t.shape != p.shape)
      fail(fmt::format("{}: tensor '{}' is {} {} but the model needs F32 with {} elements", path, p.name, dtype_name(t.dtype), t.numel(), p.numel),
           "the checkpoint does not match its own model descriptor; it is corrupt");
    std::copy(t.as<float>(), t.as<float>() + p.numel, ckpt.params.begin() + p.offset);
  }
  if (file.tensors.size() != table.entries().size())
    fail(fmt::format("{}: has {} tensors, the model has {}", path, file.tensors.size(), table.entries().size()), "the checkpoint is corrupt or from another version");
  return ckpt;
}

void save_train_state(const std::string& path, const TrainState& state) {
  SafetensorsFile file;
  file.metadata = {{"format", kStateFormat},
                   {"format_version", std::to_string(kCheckpointVersion)},
                   {"step", std::to_string(state.step)},
                   {"total_steps", std::to_string(state.total_steps)},
                   {"cursor_epoch", std::to_string(state.cursor.epoch)},
                   {"cursor_row", std::to_string(state.cursor.row)},
                   {"tokens_seen", fmt::format("{:.17g}", state.tokens_seen)},
                   {"elapsed_s", fmt::format("{:.17g}", state.elapsed_s)}};
  const int64_t n = static_cast<int64_t>(state.adam_m.size());
  file.tensors.push_back(make_tensor("adam.m", DType::F32, {n}, state.adam_m.data()));
  file.tensors.push_back(make_tensor("adam.v", DType::F32, {n}, state.adam_v.data()));
  write_safetensors(path, file);
}

TrainState load_train_state(const std::string& path, size_t n_params) {
  SafetensorsFile file = read_safetensors(path);
  check_format(file, path, kStateFormat);
  TrainState state;
  try {
    state.step = std::stoll(meta_at(file, "step", path));
    state.total_steps = std::stoll(meta_at(file, "total_steps", path));
    state.cursor.epoch = std::stoull(meta_at(file, "cursor_epoch", path));
    state.cursor.row = std::stoull(meta_at(file, "cursor_row", path));
    state.tokens_seen = std::stod(meta_at(file, "tokens_seen", path));
    state.elapsed_s = std::stod(meta_at(file, "elapsed_s", path));
  } catch (const Error&) {
    throw;
  } catch (const std::exception&) {
    fail(fmt::format("{}: malformed number in training-state metadata", path), "the file is corrupt; resume from a fresh run");
  }
  for (const char* name : {"adam.m", "adam.v"}) {
    const TensorEntry& t = file.at(name, path);
    if (t.dtype != DType::F32 || static_cast<size_t>(t.numel()) != n_params)
      fail(fmt::format("{}: '{}' has {} values, the model has {} parameters", path, name, t.numel(), n_params), "the state belongs to another model");
    (std::string(name) == "adam.m" ? state.adam_m : state.adam_v).assign(t.as<float>(), t.as<float>() + n_params);
  }
  return state;
}

}  // namespace mm
