// End-to-end training through the CLI: loss falls, resume is bit-exact, checkpoints are validated.
#include <fstream>

#include "core/csv.h"
#include "core/fileio.h"
#include "core/safetensors.h"
#include "helpers.h"
#include "model/checkpoint.h"

using namespace mm;
using Catch::Matchers::Contains;


TEST_CASE("resume after an interruption is bit-identical to an uninterrupted run", "[train][resume]") {
  test::TempDir tmp;
  const std::string data = test::prepare_small(tmp);
  for (const char* model : {"mixer:d16:l2:c32", "llama:d16:l2:h2:c32"}) {
    const std::string common = fmt::format("train --model {} --data {} --batch 4 --steps 12 --warmup 3 --lr 3e-3 --eval-every 6 --ckpt-every 100 --threads 1", model, data);
    REQUIRE(test::run_maskmix(common + " --out " + tmp.file("full")) == 0);
    REQUIRE(test::run_maskmix(common + " --out " + tmp.file("split") + " --stop-after 5") == 0);
    REQUIRE(test::run_maskmix("train --threads 1 --resume " + tmp.file("split")) == 0);
    Checkpoint full = load_weights(tmp.file("full/model.safetensors")), split = load_weights(tmp.file("split/model.safetensors"));
    INFO(model);
    CHECK(full.metadata.at("step") == "12");
    CHECK(split.metadata.at("step") == "12");
    CHECK(full.params == split.params);
    TrainState a = load_train_state(tmp.file("full/state.safetensors"), full.params.size());
    TrainState b = load_train_state(tmp.file("split/state.safetensors"), split.params.size());
    CHECK(a.adam_m == b.adam_m);
    CHECK(a.adam_v == b.adam_v);
    CHECK(a.cursor.row == b.cursor.row);
    std::filesystem::remove_all(tmp.file("full"));
    std::filesystem::remove_all(tmp.file("split"));
  }
}

TEST_CASE("training lowers the validation loss and writes train.csv with its .meta", "[train]") {
  test::TempDir tmp;
  const std::string data = test::prepare_small(tmp);
  REQUIRE(test::run_maskmix(fmt::format("train --model mixer:d32:l2:c64 --data {} --batch 8 --steps 40 --warmup 5 --lr 3e-3 --eval-every 20 --out {}", data,
                          tmp.file("run"))) == 0);
  const std::string csv = read_text_file(tmp.file("run/train.csv"));
  CHECK_THAT(csv, Contains("step,tokens,epoch,lr,train_loss,val_loss,grad_norm,step_ms,tokens_per_s,mfu,mem_gb,elapsed_s"));
  const std::string last = csv.substr(csv.rfind('\n', csv.size() - 2) + 1);
  const double val_loss = std::stod(last.substr(last.find(',', last.find(',', last.find(',', last.find(',', last.find(',') + 1) + 1) + 1) + 1) + 1));
  CHECK(val_loss < 7.0);  // ln(4096) = 8.32 at the start
  const std::string meta = read_text_file(tmp.file("run/train.meta"));
  CHECK_THAT(meta, Contains("command: maskmix train") && Contains("commit: ") && Contains("card: cpu") && Contains("init: paper"));
}

TEST_CASE("a refused train command exits 2 and leaves no run folder", "[train]") {
  test::TempDir tmp;
  const std::string data = test::prepare_small(tmp);
  for (const char* bad : {"--model mixer:d32:l2:c64 --precision fp16", "--model gpt:d32:l2:h2:c64 --recompute", "--model mixer:d32:l2:c64 --padding middle"}) {
    INFO(bad);
    std::string output;
    CHECK(test::run_maskmix(fmt::format("train {} --data {} --steps 2 --out {}", bad, data, tmp.file("refused")), &output) == 2);
    CHECK_THAT(output, Contains("HINT"));
    CHECK_FALSE(std::filesystem::exists(tmp.file("refused")));
  }
}

TEST_CASE("corrupt or mismatched checkpoints are refused", "[train][checkpoint]") {
  test::TempDir tmp;
  const std::string data = test::prepare_small(tmp);
  REQUIRE(test::run_maskmix(fmt::format("train --model mixer:d16:l1:c16 --data {} --batch 2 --steps 2 --warmup 1 --out {}", data, tmp.file("run"))) == 0);
  const std::string weights = read_text_file(tmp.file("run/model.safetensors"));
  write_file_atomic(tmp.file("run/model.safetensors"), weights.substr(0, weights.size() / 2));
  CHECK_THROWS_WITH(load_weights(tmp.file("run/model.safetensors")), Contains("truncated") || Contains("past the data size"));
  write_file_atomic(tmp.file("run/model.safetensors"), weights);
  CHECK_THROWS_WITH(load_train_state(tmp.file("run/state.safetensors"), 7), Contains("parameters"));
  CHECK_THROWS_WITH(load_weights(tmp.file("run/state.safetensors")), Contains("maskmix-train-state"));
}
