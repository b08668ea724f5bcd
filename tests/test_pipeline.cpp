// The whole reproduction pipeline in --quick mode (tiny models, few steps) produces every CSV.
#include "core/fileio.h"
#include "helpers.h"

using namespace mm;

TEST_CASE("reproduce_all.sh --quick produces every CSV", "[pipeline][slow]") {
  test::TempDir tmp;
  const std::string script = file_exists("scripts/reproduce_all.sh") ? "scripts/reproduce_all.sh" : "../scripts/reproduce_all.sh";
  const std::string cmd = fmt::format("DEVICE=cpu DATA={} OUT={} WORK={} PREPARED={} MASKMIX={} {} --quick > {} 2>&1", test::data_dir(), tmp.file("out"),
                                      tmp.file("work"), tmp.file("ts"), test::maskmix_bin(), script, tmp.file("log"));
  const int status = std::system(cmd.c_str());
  INFO(read_text_file(tmp.file("log")));
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  for (const char* csv : {"compare.csv", "heads.csv", "context.csv", "representation.csv", "retrieval.csv", "train_mixer.csv", "train_hybrid.csv"}) {
    INFO(csv);
    CHECK(file_exists(tmp.file("out") + "/" + csv));
  }
  const std::string retrieval = read_text_file(tmp.file("out/retrieval.csv"));
  CHECK(retrieval.find("bm25-paper-style") != std::string::npos);
  CHECK(retrieval.find("mixer-infonce-hard") != std::string::npos);
}
