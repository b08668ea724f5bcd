// --checkpoint / --untrained handling.
#include "cmd/model_source.h"

#include "core/error.h"

namespace mm {

void add_model_source_options(cxxopts::Options& options) {
  options.add_options("model")
      ("checkpoint", "model.safetensors written by maskmix train", cxxopts::value<std::string>()->default_value(""))
      ("untrained", "a randomly initialised model of this descriptor instead", cxxopts::value<std::string>()->default_value(""))
      ("init", "initialisation for --untrained: paper, torch or hf", cxxopts::value<std::string>()->default_value("paper"))
      ("seed", "seed", cxxopts::value<uint64_t>()->default_value("1"));
}

Checkpoint model_from_args(const cxxopts::ParseResult& args, int vocab) {
  const std::string checkpoint = args["checkpoint"].as<std::string>(), untrained = args["untrained"].as<std::string>();
  if (checkpoint.empty() == untrained.empty())
    throw UsageError("give exactly one of --checkpoint FILE or --untrained DESCRIPTOR", "e.g. --checkpoint runs/mixer/model.safetensors");
  if (!checkpoint.empty()) {
    Checkpoint ckpt = load_weights(checkpoint);
    if (ckpt.config.vocab != vocab)
      fail(fmt::format("{}: model vocab {} differs from the data's {}", checkpoint, ckpt.config.vocab, vocab), "use the --data folder the model was trained on");
    return ckpt;
  }
  Checkpoint ckpt;
  ckpt.config = ModelConfig::parse(untrained, vocab);
  ckpt.config.init = parse_init(args["init"].as<std::string>());
  ckpt.metadata["step"] = "0";
  return ckpt;
}

}  // namespace mm
