// Input inversion: the objective's gradient w.r.t. the input (finite differences), pseudo-inverse
// decoding, an untrained mixer recovering a story, and the command's errors.
#include <fstream>

#include "core/error.h"
#include "helpers.h"
#include "model/decode.h"
#include "model/model.h"
#include "ops/cpu_ops.h"

using namespace mm;
using Catch::Matchers::Contains;

TEST_CASE("inversion objective: gradient w.r.t. the input embedding matches finite differences", "[invert][grad]") {
  CpuOps<double> ops;
  for (const char* descriptor : {"mixer:d8:l2:c6:v11", "mixer:d8:l2:c6:v11:expanded2", "llama:d8:l2:h2:c6:v11", "gpt:d8:l2:h2:c6:v11", "hybrid:d8:l1:h2:c6:v11"}) {
    for (int kind : {1, 2}) {  // L2 and cosine (smooth; L1 is |.|)
      ModelConfig config = ModelConfig::parse(descriptor);
      const int B = 2, N = B * config.n_ctx, D = config.d_model;
      Model<double> model(config, ops, B);
      model.init_params(5);
      auto a = test::random_vector(static_cast<size_t>(N) * D, 6), target = test::random_vector(static_cast<size_t>(N) * D, 7);
      std::vector<double> weights(N, 1.0), losses(N), dout(static_cast<size_t>(N) * D), grad(a.size());
      weights[1] = 0.0;
      auto objective = [&] {
        const double* out = model.forward_embeddings(a.data(), B, config.n_layers);
        ops.distance_loss(losses.data(), dout.data(), out, target.data(), weights.data(), N, D, kind);
        double s = 0;
        for (double l : losses) s += l;
        return s;
      };
      objective();
      model.backward_embeddings(dout.data(), grad.data(), B, config.n_layers);
      test::check_gradient(std::string(descriptor) + (kind == 1 ? " l2" : " cosine"), a, grad, objective, 30, 1e-5, 1e-5);
    }
  }
}

TEST_CASE("pseudo-inverse decoding returns the true tokens of true embeddings", "[invert]") {
  const int V = 60, D = 12;
  auto w = test::random_vector(static_cast<size_t>(V) * D, 9);
  std::vector<double> pinv = pseudo_inverse(w, V, D);
  // Moore-Penrose: W P W = W
  std::vector<double> wp(static_cast<size_t>(V) * V, 0.0), wpw(static_cast<size_t>(V) * D, 0.0);
  for (int i = 0; i < V; ++i)
    for (int j = 0; j < V; ++j)
      for (int k = 0; k < D; ++k) wp[i * V + j] += w[i * D + k] * pinv[k * V + j];
  double err = 0;
  for (int i = 0; i < V; ++i)
    for (int j = 0; j < D; ++j) {
      for (int k = 0; k < V; ++k) wpw[i * D + j] += wp[i * V + k] * w[k * D + j];
      err = std::max(err, std::fabs(wpw[i * D + j] - w[i * D + j]));
    }
  CHECK(err < 1e-9);
  // wide case (V < D) as well
  std::vector<double> wide = test::random_vector(5 * 9, 10);
  std::vector<double> p2 = pseudo_inverse(wide, 5, 9);
  for (int i = 0; i < 5; ++i)  // W P = I for full row rank
    for (int j = 0; j < 5; ++j) {
      double s = 0;
      for (int k = 0; k < 9; ++k) s += wide[i * 9 + k] * p2[k * 5 + j];
      CHECK(s == Approx(i == j ? 1.0 : 0.0).margin(1e-9));
    }
  // With V > D the pinv logits a.P are the least-squares coefficients; the true row must rank in the top 5
  // (it is exactly recovered when V <= D); nearest-row decoding finds it exactly.
  std::vector<float> wf(w.begin(), w.end());
  EmbeddingDecoder nearest(wf, V, D, DecodeMethod::Nearest);
  std::vector<int32_t> top = nearest.topk(wf.data(), V, 1);
  for (int v = 0; v < V; ++v) CHECK(top[v] == v);
  // the paper's setting (V >> D, Gaussian embeddings): pinv decoding of W_E[t] gives t
  std::vector<double> big = test::random_vector(400 * 64, 12);
  std::vector<float> bf(big.begin(), big.end());
  EmbeddingDecoder paper(bf, 400, 64, DecodeMethod::Pinv);
  std::vector<int32_t> decoded = paper.topk(bf.data(), 400, 1);
  for (int v = 0; v < 400; ++v) REQUIRE(decoded[v] == v);
  std::vector<double> small = test::random_vector(8 * 12, 11);
  std::vector<float> sf(small.begin(), small.end());
  EmbeddingDecoder exact(sf, 8, 12, DecodeMethod::Pinv);
  std::vector<int32_t> top1 = exact.topk(sf.data(), 8, 1);
  for (int v = 0; v < 8; ++v) CHECK(top1[v] == v);
}

TEST_CASE("an untrained tiny mixer is inverted near perfectly; bad requests fail clearly", "[invert][cli]") {
  test::TempDir tmp;
  const std::string data = tmp.file("ts");
  REQUIRE(data == test::prepare_small(tmp));
  std::string out;
  REQUIRE(test::run_maskmix(fmt::format("invert --untrained mixer:d64:l2:c32 --data {} --stories 2 --steps 300 --out {}", data, tmp.file("inv.csv")), &out) == 0);
  const size_t at = out.find("top-1 accuracy ");
  REQUIRE(at != std::string::npos);
  CHECK(std::stod(out.substr(at + 15)) >= 0.95);
  std::ifstream csv(tmp.file("inv.csv"));
  std::string header;
  std::getline(csv, header);
  CHECK_THAT(header, Contains("model,init,step,layer,drop_first,story,n_tokens,hamming_topk,top1,final_loss"));

  CHECK(test::run_maskmix(fmt::format("invert --untrained mixer:d64:l2:c32 --data {} --layer 7 --steps 2 --out {}", data, tmp.file("x.csv")), &out) == 2);
  CHECK_THAT(out, Contains("--layer 7"));
  CHECK_FALSE(std::filesystem::exists(tmp.file("x.csv")));  // nothing written for a bad request
  CHECK(test::run_maskmix(fmt::format("invert --checkpoint {} --data {} --out {}", tmp.file("missing.safetensors"), data, tmp.file("x.csv")), &out) == 1);
  CHECK_THAT(out, Contains("no such file"));
  CHECK(test::run_maskmix(fmt::format("invert --untrained mixer:d64:l2:c32:v100 --data {} --steps 2 --out {}", data, tmp.file("x.csv")), &out) == 1);
  CHECK_THAT(out, Contains("vocab"));
  CHECK(test::run_maskmix(fmt::format("invert --data {} --steps 2 --out {}", data, tmp.file("x.csv")), &out) == 2);
  CHECK_THAT(out, Contains("exactly one of"));
}
