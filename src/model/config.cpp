// Descriptor parsing/printing for ModelConfig.
#include "model/config.h"

#include <sstream>
#include <vector>

#include "core/error.h"

namespace mm {

const char* kind_name(ModelKind kind) {
  switch (kind) {
    case ModelKind::Mixer: return "mixer";
    case ModelKind::Llama: return "llama";
    case ModelKind::Gpt: return "gpt";
    case ModelKind::Hybrid: return "hybrid";
  }
  return "?";
}

InitScheme parse_init(const std::string& name) {
  if (name == "paper") return InitScheme::Paper;
  if (name == "torch") return InitScheme::Torch;
  if (name == "hf") return InitScheme::Hf;
  throw UsageError(fmt::format("unknown init '{}'", name), "use --init paper, torch or hf");
}

const char* init_name(InitScheme init) {
  switch (init) {
    case InitScheme::Paper: return "paper";
    case InitScheme::Torch: return "torch";
    case InitScheme::Hf: return "hf";
  }
  return "?";
}

namespace {
[[noreturn]] void bad(const std::string& descriptor, const std::string& why) {
  throw UsageError(fmt::format("bad model descriptor '{}': {}", descriptor, why),
                   "use e.g. mixer:d512:l8:c512, mixer:d512:l8:c512:heads4|parallel2|expanded, llama:d512:l8:h4:c512, gpt:d512:l8:h4:c512, hybrid:d512:l8:h4:c512");
}

bool number_after(const std::string& part, const std::string& prefix, int& out) {
  if (part.rfind(prefix, 0) != 0 || part.size() == prefix.size()) return false;
  std::string digits = part.substr(prefix.size());
  if (digits.find_first_not_of("0123456789") != std::string::npos) return false;
  out = std::stoi(digits);
  return true;
}
}  // namespace

ModelConfig ModelConfig::parse(const std::string& descriptor, int vocab) {
  std::vector<std::string> parts;
  std::stringstream ss(descriptor);
  for (std::string part; std::getline(ss, part, ':');) parts.push_back(part);
  if (parts.empty()) bad(descriptor, "empty");
  ModelConfig c;
  c.vocab = vocab;
  if (parts[0] == "mixer") c.kind = ModelKind::Mixer;
  else if (parts[0] == "llama") c.kind = ModelKind::Llama;
  else if (parts[0] == "gpt") c.kind = ModelKind::Gpt, c.tied = true;
  else if (parts[0] == "hybrid") c.kind = ModelKind::Hybrid;
  else bad(descriptor, fmt::format("unknown kind '{}'", parts[0]));
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string& p = parts[i];
    int n = 0;
    if (number_after(p, "d", n)) c.d_model = n;
    else if (number_after(p, "l", n)) c.n_layers = n;
    else if (number_after(p, "c", n)) c.n_ctx = n;
    else if (number_after(p, "h", n)) c.heads = n;
    else if (number_after(p, "v", n)) c.vocab = n;
    else if (number_after(p, "ff", n)) c.ff_mult = n;
    else if (p == "tied") c.tied = true;
    else if (p == "untied") c.tied = false;
    else if (p == "flat") c.variant = MixerVariant::Flat;
    else if (p == "bidirectional") c.causal = false;
    else if (p == "expanded") c.variant = MixerVariant::Expanded;
    else if (number_after(p, "expanded", n)) c.variant = MixerVariant::Expanded, c.expansion = n;
    else if (number_after(p, "heads", n)) c.variant = MixerVariant::Heads, c.mixer_heads = n;
    else if (number_after(p, "parallel", n)) c.variant = MixerVariant::Parallel, c.parallel = n;
    else bad(descriptor, fmt::format("unknown part '{}'", p));
  }
  if (c.d_model <= 0 || c.n_layers <= 0 || c.n_ctx <= 1 || c.vocab <= 1 || c.ff_mult <= 0) bad(descriptor, "sizes must be positive");
  if (c.has_attention() && (c.heads <= 0 || c.d_model % c.heads != 0 || (c.d_model / c.heads) % 2 != 0))
    bad(descriptor, fmt::format("d{} is not divisible into {} heads of even size", c.d_model, c.heads));
  if (c.kind != ModelKind::Mixer && c.variant != MixerVariant::Flat) bad(descriptor, "mixer variants apply to mixer models only");
  if (!c.causal && c.kind != ModelKind::Mixer) bad(descriptor, "only mixers can be bidirectional");
  if (c.variant == MixerVariant::Heads && (c.mixer_heads <= 0 || c.d_model % c.mixer_heads != 0))
    bad(descriptor, "d_model must be divisible by the mixer heads");
  if (c.variant == MixerVariant::Expanded && c.expansion <= 0) bad(descriptor, "expansion must be positive");
  if (c.variant == MixerVariant::Parallel && c.parallel <= 0) bad(descriptor, "parallel branches must be positive");
  if (c.vocab > 65536) bad(descriptor, "vocab above 65536 does not fit uint16 shards");
  return c;
}

std::string ModelConfig::descriptor() const {
  std::string s = fmt::format("{}:d{}:l{}", kind_name(kind), d_model, n_layers);
  if (has_attention()) s += fmt::format(":h{}", heads);
  s += fmt::format(":c{}:v{}", n_ctx, vocab);
  if (ff_mult != 4) s += fmt::format(":ff{}", ff_mult);
  if (kind == ModelKind::Mixer) {
    if (variant == MixerVariant::Expanded) s += fmt::format(":expanded{}", expansion);
    if (variant == MixerVariant::Heads) s += fmt::format(":heads{}", mixer_heads);
    if (variant == MixerVariant::Parallel) s += fmt::format(":parallel{}", parallel);
  }
  if (tied != (kind == ModelKind::Gpt)) s += tied ? ":tied" : ":untied";
  if (!causal) s += ":bidirectional";
  return s;
}

}  // namespace mm
