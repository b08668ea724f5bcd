// Model configuration and its compact descriptor, e.g. "mixer:d512:l8:c512", "llama:d512:l8:h4:c512",
// "mixer:d512:l8:c512:heads4", "mixer:d512:l8:c512:parallel2", "mixer:d512:l8:c512:expanded".
#pragma once
#include <string>

namespace mm {

enum class ModelKind { Mixer, Llama, Gpt, Hybrid };
enum class MixerVariant { Flat, Expanded, Heads, Parallel };
// paper: each family as in the paper's code (mixer = PyTorch defaults, llama/hybrid/gpt = HF N(0,0.02));
// torch / hf: every model on that one scheme.
enum class InitScheme { Paper, Torch, Hf };

struct ModelConfig {
  ModelKind kind = ModelKind::Mixer;
  int d_model = 512;
  int n_layers = 8;
  int n_ctx = 512;
  int vocab = 4096;
  int heads = 4;        // attention heads (llama, gpt, hybrid)
  int ff_mult = 4;      // MLP width = ff_mult * d_model
  MixerVariant variant = MixerVariant::Flat;
  int mixer_heads = 1;  // MixerVariant::Heads
  int expansion = 2;    // MixerVariant::Expanded: inner mixing width = expansion * n_ctx
  int parallel = 2;     // MixerVariant::Parallel: number of summed GELU(mix) branches
  bool tied = false;    // lm_head shares the token embedding (GPT's default)
  bool causal = true;   // false: unmasked mixing (the retrieval model's bidirectional mixer)
  InitScheme init = InitScheme::Paper;

  // Parses a descriptor; unknown parts raise UsageError. `vocab` fills in when the descriptor has no vN.
  static ModelConfig parse(const std::string& descriptor, int vocab = 4096);
  std::string descriptor() const;
  bool has_attention() const { return kind != ModelKind::Mixer; }
};

const char* kind_name(ModelKind kind);
InitScheme parse_init(const std::string& name);
const char* init_name(InitScheme init);

}  // namespace mm
