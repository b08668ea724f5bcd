// Model-level properties on tiny configs of every kind: parameter counts, finite-difference gradients
// (double precision), causality, masks staying zero under AdamW, and overfitting one batch.
#include <map>

#include "helpers.h"
#include "core/error.h"
#include "model/model.h"
#include "ops/cpu_ops.h"

using namespace mm;

namespace {

const std::vector<std::string> kTinyModels = {
    "mixer:d8:l2:c6:v11",          "mixer:d8:l2:c6:v11:heads2", "mixer:d8:l2:c6:v11:parallel2", "mixer:d8:l2:c6:v11:expanded2",
    "llama:d8:l2:h2:c6:v11",       "gpt:d8:l2:h2:c6:v11",       "hybrid:d8:l2:h2:c6:v11",
};

}  // namespace

TEST_CASE("parameter counts match PAPER.md 1.9", "[model]") {
  CpuOps<float> ops;
  auto count = [&](const std::string& d) { return Model<float>(ModelConfig::parse(d), ops, 1).num_params(); };
  CHECK(count("mixer:d256:l8:c512") == 8411136);
  CHECK(count("mixer:d512:l8:c512") == 23109632);
  CHECK(count("mixer:d1024:l8:c512") == 77672448);
  CHECK(count("llama:d512:l8:h4:c512") == 37757440);  // 37.76M
  CHECK(count("gpt:d512:l8:h4:c512") == 27578368);    // 27.58M
  CHECK(count("llama:d128:l8:h4:c512") == 3147904);   // 3.15M
  // the expanded (e=2) mixer adds 2*(2N*N + ...) inter-token weights: 29.41M at d512
  CHECK(std::llround(count("mixer:d512:l8:c512:expanded2") / 1e4) == 2941);
}

TEST_CASE("descriptors round-trip and reject nonsense", "[model]") {
  for (const char* d : {"mixer:d512:l8:c512", "llama:d512:l8:h4:c512", "mixer:d64:l2:c32:heads4", "gpt:d64:l2:h4:c32", "hybrid:d64:l2:h2:c32"}) {
    ModelConfig c = ModelConfig::parse(d);
    CHECK(ModelConfig::parse(c.descriptor()).descriptor() == c.descriptor());
  }
  CHECK_THROWS_AS(ModelConfig::parse("transformer:d512"), UsageError);
  CHECK_THROWS_AS(ModelConfig::parse("llama:d510:l8:h4"), UsageError);
  CHECK_THROWS_AS(ModelConfig::parse("mixer:d512:lx"), UsageError);
  CHECK_THROWS_AS(ModelConfig::parse("llama:d64:l2:heads2"), UsageError);
}

TEST_CASE("model gradients match finite differences (double)", "[model][grad]") {
  CpuOps<double> ops;
  for (const std::string& descriptor : kTinyModels) {
    SECTION(descriptor) {
      ModelConfig config = ModelConfig::parse(descriptor);
      const int B = 2, N = B * config.n_ctx;
      Model<double> model(config, ops, B);
      model.init_params(7);
      // perturb norms and biases away from 1/0 so their gradients are generic
      std::vector<double> p = model.save_params();
      Rng rng(3);
      for (double& x : p) x += 0.1 * rng.normal();
      model.load_params(p);
      auto tokens = test::random_tokens(N, config.vocab, 11), targets = test::random_tokens(N, config.vocab, 12);
      targets[0] = -1;
      targets[5] = -1;
      model.zero_grad();
      model.forward(tokens.data(), targets.data(), B, true);
      model.backward();
      std::vector<double> grad(model.grad_data(), model.grad_data() + model.num_params());
      for (const ParamInfo& info : model.params().entries()) {
        std::vector<double> slice(p.begin() + info.offset, p.begin() + info.offset + info.numel);
        std::vector<double> gslice(grad.begin() + info.offset, grad.begin() + info.offset + info.numel);
        auto loss = [&] {
          std::copy(slice.begin(), slice.end(), p.begin() + info.offset);
          std::copy(p.begin(), p.end(), model.param_data());  // bypass masking: masked entries must show 0 gradient
          return model.forward(tokens.data(), targets.data(), B, false);
        };
        test::check_gradient(descriptor + " " + info.name, slice, gslice, loss, 12, 1e-5, 2e-5);
        std::copy(slice.begin(), slice.end(), p.begin() + info.offset);
      }
    }
  }
}

TEST_CASE("causal models: later tokens leave earlier outputs bit-identical", "[model][causality]") {
  CpuOps<float> ops;
  for (const std::string& descriptor : kTinyModels) {
    ModelConfig config = ModelConfig::parse(descriptor);
    const int T = config.n_ctx, V = config.vocab;
    Model<float> model(config, ops, 1);
    model.init_params(5);
    auto tokens = test::random_tokens(T, V, 21);
    model.forward(tokens.data(), nullptr, 1);
    std::vector<float> before(model.logits(), model.logits() + static_cast<size_t>(T) * V);
    for (int t = 0; t + 1 < T; ++t) {
      auto changed = tokens;
      for (int k = t + 1; k < T; ++k) changed[k] = (changed[k] + 1 + k) % V;
      model.forward(changed.data(), nullptr, 1);
      for (int i = 0; i <= t; ++i)
        for (int v = 0; v < V; ++v) {
          INFO(descriptor << ": position " << i << " changed when tokens after " << t << " changed");
          REQUIRE(model.logits()[static_cast<size_t>(i) * V + v] == before[static_cast<size_t>(i) * V + v]);
        }
    }
  }
}

TEST_CASE("masked triangles of W, dW and AdamW moments stay exactly zero", "[model][mask]") {
  CpuOps<float> ops;
  for (const char* descriptor : {"mixer:d8:l2:c6:v11", "mixer:d8:l1:c6:v11:expanded2", "hybrid:d8:l1:h2:c6:v11", "mixer:d8:l1:c6:v11:heads2"}) {
    ModelConfig config = ModelConfig::parse(descriptor);
    Model<float> model(config, ops, 2);
    model.init_params(1);
    const size_t n = model.num_params();
    std::vector<float> m(n, 0.0f), v(n, 0.0f);
    auto tokens = test::random_tokens(2 * config.n_ctx, config.vocab, 2), targets = test::random_tokens(2 * config.n_ctx, config.vocab, 3);
    auto upper_is_zero = [&](const float* x) {
      for (const ParamInfo& p : model.params().entries()) {
        if (!p.lower_triangular) continue;
        const size_t To = p.shape[p.shape.size() - 2], Ti = p.shape.back();
        for (size_t k = 0; k < p.numel / (To * Ti); ++k)
          for (size_t i = 0; i < To; ++i)
            for (size_t j = i + 1; j < Ti; ++j)
              if (x[p.offset + k * To * Ti + i * Ti + j] != 0.0f) return false;
      }
      return true;
    };
    for (int step = 1; step <= 5; ++step) {
      model.zero_grad();
      model.forward(tokens.data(), targets.data(), 2, true);
      model.backward();
      REQUIRE(upper_is_zero(model.grad_data()));
      ops.adamw(model.param_data(), model.grad_data(), m.data(), v.data(), n, 1e-2f, 0.9f, 0.999f, 1e-8f, 0.0f, step, 1.0f);
      REQUIRE(upper_is_zero(model.param_data()));
      REQUIRE(upper_is_zero(m.data()));
      REQUIRE(upper_is_zero(v.data()));
    }
  }
}

TEST_CASE("a tiny model of every kind overfits one batch", "[model][train]") {
  CpuOps<float> ops;
  for (const std::string base : {"mixer:d32:l2:c16:v32", "llama:d32:l2:h2:c16:v32", "gpt:d32:l2:h2:c16:v32", "hybrid:d32:l2:h2:c16:v32"}) {
    ModelConfig config = ModelConfig::parse(base);
    Model<float> model(config, ops, 2);
    model.init_params(9);
    const size_t n = model.num_params();
    std::vector<float> m(n, 0.0f), v(n, 0.0f);
    auto tokens = test::random_tokens(2 * config.n_ctx, config.vocab, 4);
    std::vector<int32_t> targets(tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i) targets[i] = (i + 1) % config.n_ctx ? tokens[i + 1] : -1;
    double loss = 0;
    for (int step = 1; step <= 300; ++step) {
      model.zero_grad();
      loss = model.forward(tokens.data(), targets.data(), 2, true);
      model.backward();
      ops.adamw(model.param_data(), model.grad_data(), m.data(), v.data(), n, 3e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, step, 1.0f);
    }
    INFO(base << " final loss " << loss);
    CHECK(loss < 0.1);
  }
}

TEST_CASE("activation memory estimate is per sequence and counts what the model allocates", "[model]") {
  CpuOps<float> ops;
  ModelConfig config = ModelConfig::parse("mixer:d32:l2:c16:v64");
  Model<float> one(config, ops, 1), three(config, ops, 3);
  CHECK(one.activation_bytes_per_sequence() == three.activation_bytes_per_sequence());
  // at least the residual stream (l+1 buffers of T*D) and the logits (T*V) in fp32
  CHECK(one.activation_bytes_per_sequence() >= (3 * 16 * 32 + 16 * 64) * sizeof(float));
  CHECK(Model<float>(config, ops, 0).activation_bytes_per_sequence() == 0);
}

TEST_CASE("--recompute: gradients are bit-identical with less activation memory; GPT refuses it", "[model][recompute]") {
  CpuOps<float> ops;
  for (const std::string descriptor : {"mixer:d8:l3:c6:v11", "mixer:d8:l3:c6:v11:heads2", "mixer:d8:l2:c6:v11:parallel2", "mixer:d8:l2:c6:v11:expanded2",
                                        "llama:d8:l3:h2:c6:v11", "hybrid:d8:l3:h2:c6:v11"}) {
    INFO(descriptor);
    ModelConfig config = ModelConfig::parse(descriptor);
    const int B = 2;
    Model<float> stored(config, ops, B), rebuilt(config, ops, B, /*recompute=*/true);
    stored.init_params(5);
    rebuilt.load_params(stored.save_params());
    auto tokens = test::random_tokens(B * config.n_ctx, config.vocab, 6), targets = test::random_tokens(B * config.n_ctx, config.vocab, 7);
    for (Model<float>* m : {&stored, &rebuilt}) {
      m->zero_grad();
      m->forward(tokens.data(), targets.data(), B, true);
      m->backward();
    }
    const size_t n = stored.num_params();
    CHECK(std::vector<float>(stored.grad_data(), stored.grad_data() + n) == std::vector<float>(rebuilt.grad_data(), rebuilt.grad_data() + n));
    if (config.n_layers > 2) CHECK(rebuilt.activation_bytes_per_sequence() < stored.activation_bytes_per_sequence());
  }
  CHECK_THROWS_AS(Model<float>(ModelConfig::parse("gpt:d8:l2:h2:c6:v11"), ops, 1, true), UsageError);
}
