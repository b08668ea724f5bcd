// Retrieval: pairs parsing errors, BM25 by hand, InfoNCE and retrieval-model gradients by finite
// differences, overfitting a tiny set, and cosine retrieval of stories by themselves through the CLI.
#include <fstream>

#include "core/error.h"
#include "core/pairs.h"
#include "helpers.h"
#include "model/retrieval.h"
#include "ops/cpu_ops.h"

using namespace mm;
using Catch::Matchers::Contains;

TEST_CASE("pairs files: good lines parse, bad ones name their line", "[retrieval][io]") {
  test::TempDir tmp;
  test::write_text(tmp.file("ok.jsonl"), "{\"id\": \"a\", \"summary\": \"s1\", \"story\": \"t1\"}\n\n{\"id\": \"b\", \"summary\": \"s2\", \"story\": \"t2\"}\n");
  auto pairs = read_pairs(tmp.file("ok.jsonl"));
  REQUIRE(pairs.size() == 2);
  CHECK(pairs[1].story == "t2");
  test::write_text(tmp.file("bad.jsonl"), "{\"id\": \"a\", \"summary\": \"s\", \"story\": \"t\"}\n{\"id\": \"b\", \"summary\": \"s\" \"story\": \"t\"}\n");
  CHECK_THROWS_WITH(read_pairs(tmp.file("bad.jsonl")), Contains("bad.jsonl:2") && Contains("malformed JSON"));
  test::write_text(tmp.file("missing.jsonl"), "{\"id\": \"a\", \"summary\": \"s\"}\n");
  CHECK_THROWS_WITH(read_pairs(tmp.file("missing.jsonl")), Contains("missing.jsonl:1") && Contains("\"story\""));
  test::write_text(tmp.file("dup.jsonl"), "{\"id\": \"a\", \"summary\": \"s\", \"story\": \"t\"}\n{\"id\": \"a\", \"summary\": \"x\", \"story\": \"y\"}\n");
  CHECK_THROWS_WITH(read_pairs(tmp.file("dup.jsonl")), Contains("dup.jsonl:2") && Contains("duplicate id"));
}

TEST_CASE("BM25 matches a hand-computed score", "[retrieval]") {
  Bm25 bm25({"the cat sat", "the dog ran far away"});
  // "cat" occurs in 1 of 2 documents: idf = ln((2 - 1 + 0.5) / (1 + 0.5) + 1) = ln 2.
  // document 0: tf 1, length 3, average length 4: 2.5 / (1 + 1.5 * (0.25 + 0.75 * 3 / 4)) = 2.5 / 2.21875
  CHECK(bm25.score("Cat!", 0) == Approx(std::log(2.0) * 2.5 / 2.21875));
  CHECK(bm25.score("cat", 1) == 0.0);
  CHECK(Bm25::words("It's 3 o'clock.") == std::vector<std::string>{"it", "s", "3", "o", "clock"});
}

TEST_CASE("InfoNCE gradient matches finite differences", "[retrieval][grad]") {
  const int n = 5, D = 6;
  auto q = test::random_vector(D, 1), docs = test::random_vector(static_cast<size_t>(n) * D, 2);
  for (double tau : {0.02, 0.5}) {
    std::vector<double> dq, dd;
    auto loss_at = [&](const std::vector<double>& qq, const std::vector<double>& dc) {
      std::vector<float> qf(qq.begin(), qq.end()), df(dc.begin(), dc.end());
      std::vector<double> a, b;
      return info_nce(qf.data(), df.data(), n, D, 3, tau, a, b);
    };
    std::vector<float> qf(q.begin(), q.end()), df(docs.begin(), docs.end());
    info_nce(qf.data(), df.data(), n, D, 3, tau, dq, dd);
    // float inputs limit the step; use a relative step on a smooth function
    test::check_gradient("infonce dq", q, dq, [&] { return loss_at(q, docs); }, 40, 1e-3, 2e-3);
    test::check_gradient("infonce ddocs", docs, dd, [&] { return loss_at(q, docs); }, 40, 1e-3, 2e-3);
  }
}

TEST_CASE("retrieval model: gradients by finite differences, and it overfits a tiny set", "[retrieval][grad]") {
  CpuOps<double> ops;
  const int dim = 6, n = 4, B = 3;
  RetrievalModel<double> model(dim, n, 2, ops, B);
  model.init_params(3);
  auto sets = test::random_vector(static_cast<size_t>(B) * n * dim, 4);
  std::vector<int32_t> labels{0, 2, 1};
  model.zero_grad();
  model.forward(sets.data(), labels.data(), B, nullptr, true);
  model.backward();
  std::vector<double> p = model.save_params();
  std::vector<double> grad(model.grad_data(), model.grad_data() + model.num_params());
  auto loss = [&] {
    model.load_params(p);
    return model.forward(sets.data(), labels.data(), B, nullptr, false);
  };
  test::check_gradient("retrieval model", p, grad, loss, 200, 1e-5, 1e-5);

  CpuOps<float> fops;
  RetrievalModel<float> small(dim, n, 2, fops, B);
  small.init_params(5);
  std::vector<float> fsets(sets.begin(), sets.end());
  const size_t P = small.num_params();
  std::vector<float> m(P, 0.0f), v(P, 0.0f);
  double last = 0;
  for (int step = 1; step <= 300; ++step) {
    small.zero_grad();
    last = small.forward(fsets.data(), labels.data(), B, nullptr, true);
    small.backward();
    fops.adamw(small.param_data(), small.grad_data(), m.data(), v.data(), P, 3e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, step, 1.0f);
  }
  CHECK(last < 0.05);
}

TEST_CASE("cosine retrieval is perfect when the queries are the stories themselves", "[retrieval][cli]") {
  test::TempDir tmp;
  const std::string data = tmp.file("ts");
  REQUIRE(data == test::prepare_small(tmp));
  const std::string pairs = test::data_dir() + "/retrieval/pairs_valid.jsonl";
  std::string out;
  REQUIRE(test::run_maskmix(fmt::format("embed --untrained mixer:d32:l2:c64 --data {} --pairs {} --field story --out {}", data, pairs, tmp.file("c.safetensors")), &out) == 0);
  REQUIRE(test::run_maskmix(fmt::format("retrieve eval --method cosine --queries {0} --candidates {0} --sizes 32,500 --seeds 2 --out {1}", tmp.file("c.safetensors"),
                          tmp.file("r.csv")), &out) == 0);
  CHECK_THAT(out, Contains("500     1.0000"));
  CHECK(test::run_maskmix(fmt::format("retrieve eval --method cosine --queries {} --candidates {} --out {}", tmp.file("c.safetensors"), tmp.file("missing"), tmp.file("r.csv")), &out) == 1);
  CHECK_THAT(out, Contains("no such file"));
  CHECK(test::run_maskmix("retrieve frobnicate", &out) == 2);
}
