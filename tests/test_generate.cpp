// Incremental decoding (KV cache / cached mixer rows) gives the logits of a full forward at every
// position, for every model kind; sampling respects top-k and is deterministic for a seed.
#include "helpers.h"
#include "model/decoder.h"
#include "model/model.h"
#include "ops/cpu_ops.h"

using namespace mm;

TEST_CASE("incremental decoding equals full recompute for every model kind", "[generate]") {
  CpuOps<float> ops;
  for (const char* descriptor : {"mixer:d16:l2:c12:v40", "mixer:d16:l2:c12:v40:heads2", "mixer:d16:l2:c12:v40:parallel2", "mixer:d16:l2:c12:v40:expanded2",
                                 "llama:d16:l2:h2:c12:v40", "gpt:d16:l2:h2:c12:v40", "hybrid:d16:l2:h2:c12:v40"}) {
    INFO(descriptor);
    ModelConfig config = ModelConfig::parse(descriptor);
    const int T = config.n_ctx, V = config.vocab;
    Model<float> model(config, ops, 1);
    model.init_params(21);
    const std::vector<float> params = model.save_params();
    IncrementalDecoder decoder(config, model.params(), params);
    Rng rng(4);
    std::vector<int32_t> tokens(T);
    for (auto& t : tokens) t = static_cast<int32_t>(rng.below(V));
    model.forward(tokens.data(), nullptr, 1);
    for (int t = 0; t < T; ++t) {
      const std::vector<float> logits = decoder.step(tokens[t]);
      double worst = 0, scale = 0;
      for (int v = 0; v < V; ++v) {
        worst = std::max(worst, static_cast<double>(std::fabs(logits[v] - model.logits()[static_cast<size_t>(t) * V + v])));
        scale = std::max(scale, static_cast<double>(std::fabs(model.logits()[static_cast<size_t>(t) * V + v])));
      }
      REQUIRE(worst <= 1e-4 * std::max(1.0, scale));
    }
    CHECK_THROWS(decoder.step(0));  // the window is full
  }
}

TEST_CASE("sampling: greedy, top-k and seeded repeatability", "[generate]") {
  std::vector<float> logits{0.1f, 3.0f, 2.9f, -1.0f, 2.95f};
  Rng rng(1);
  CHECK(sample_token(logits, 0.0, 0, 1.0, rng) == 1);
  for (int i = 0; i < 200; ++i) {
    const int32_t t = sample_token(logits, 1.0, 2, 1.0, rng);
    REQUIRE((t == 1 || t == 4));
  }
  Rng a(7), b(7);
  for (int i = 0; i < 20; ++i) REQUIRE(sample_token(logits, 0.7, 0, 0.9, a) == sample_token(logits, 0.7, 0, 0.9, b));
  Rng c(3);
  for (int i = 0; i < 100; ++i) REQUIRE(sample_token(logits, 1.0, 0, 1e-6, c) == 1);  // top-p that small keeps only the best
}
