// The PyTorch twin (scripts/torch_twin.py, written independently) must reproduce maskmix's loss on the
// same checkpoint and tokens within 1e-4 relative, for every model kind.
#include <cstdio>
#include <fstream>

#include "core/fileio.h"
#include "core/json.h"
#include "helpers.h"
#include "model/checkpoint.h"
#include "model/model.h"
#include "ops/cpu_ops.h"

using namespace mm;

namespace {

std::string python() {
  const char* env = std::getenv("MASKMIX_PYTHON");
  return env ? env : "/usr/bin/python3";
}

std::string capture(const std::string& command) {
  std::string out;
  std::FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buffer[4096];
  while (size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) out.append(buffer, n);
  ::pclose(pipe);
  return out;
}

std::string twin_path() {
  for (const char* candidate : {"scripts/torch_twin.py", "../scripts/torch_twin.py"})
    if (file_exists(candidate)) return candidate;
  return "scripts/torch_twin.py";
}

}  // namespace

TEST_CASE("torch twin reproduces maskmix's loss for every model kind", "[twin]") {
  const std::string probe = capture(python() + " -c 'import torch, numpy; print(\"torch-ok\")'");
  INFO("the twin needs PyTorch for " << python() << " (make deps installs python3-torch): " << probe);
  REQUIRE(probe.find("torch-ok") != std::string::npos);

  CpuOps<float> ops;
  test::TempDir tmp;
  for (const char* descriptor : {"mixer:d16:l2:c12:v40", "mixer:d16:l2:c12:v40:heads2", "mixer:d16:l2:c12:v40:parallel2",
                                 "mixer:d16:l2:c12:v40:expanded2", "llama:d16:l2:h2:c12:v40", "gpt:d16:l2:h2:c12:v40",
                                 "hybrid:d16:l2:h2:c12:v40"}) {
    ModelConfig config = ModelConfig::parse(descriptor);
    const int B = 3, N = B * config.n_ctx;
    Model<float> model(config, ops, B);
    model.init_params(17);
    std::vector<float> params = model.save_params();
    Rng rng(5);
    for (float& p : params) p += 0.05f * rng.normal();  // move norms/biases off 1/0
    model.load_params(params);
    params = model.save_params();
    save_weights(tmp.file("m.safetensors"), config, model.params(), params, {});

    std::vector<int32_t> io(2 * N);
    for (int i = 0; i < N; ++i) io[i] = static_cast<int32_t>(rng.below(config.vocab));
    for (int i = 0; i < N; ++i) io[N + i] = (i % 5 == 0) ? -1 : static_cast<int32_t>(rng.below(config.vocab));
    std::ofstream(tmp.file("batch.bin"), std::ios::binary).write(reinterpret_cast<const char*>(io.data()), io.size() * sizeof(int32_t));
    const double ours = model.forward(io.data(), io.data() + N, B);

    const std::string out = capture(fmt::format("{} {} --checkpoint {} --tokens {} --batch {} --double", python(), twin_path(), tmp.file("m.safetensors"),
                                                tmp.file("batch.bin"), B));
    INFO(descriptor << ": twin said " << out);
    Json result = parse_json(out.substr(out.find('{')));
    const double theirs = result.obj().at("loss").num();
    CHECK(std::fabs(ours - theirs) / std::fabs(theirs) < 1e-4);
  }
}
