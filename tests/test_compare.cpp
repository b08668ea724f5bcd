// `maskmix compare` on synthetic runs: interpolated losses at equal steps/tokens/time/FLOPs, and refusal
// to compare runs on different data without --force.
#include <cmath>
#include <fstream>

#include "cmd/compare.h"
#include "core/error.h"
#include "helpers.h"

using namespace mm;
using Catch::Matchers::Contains;

namespace {
void make_run(const std::string& dir, const std::string& rows, const std::string& data, double flops_per_token) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/train.csv") << "step,tokens,epoch,lr,train_loss,val_loss,grad_norm,step_ms,tokens_per_s,mfu,mem_gb,elapsed_s\n" << rows;
  std::ofstream(dir + "/train.meta") << "command: synthetic\nmodel: mixer:d8\nparameters: 100\ndata: " << data << "\ntokenizer_hash: abc\nflops_per_token: "
                                     << flops_per_token << "\n";
}
}  // namespace

TEST_CASE("compare interpolates validation loss on every axis", "[compare]") {
  test::TempDir tmp;
  // evaluations at steps 10 (loss 4.0) and 30 (loss 2.0); 100 tokens per step; 0.5 s per step
  make_run(tmp.file("a"), "10,1000,0,1,4.5,4.0,1,1,100,,0.1,5.0\n20,2000,0,1,3.5,,1,1,100,,0.2,10.0\n30,3000,0,1,2.5,2.0,1,1,100,,0.3,15.0\n", "d", 10.0);
  RunCurve a = load_run(tmp.file("a"));
  CHECK(interpolate_val(a, 20, CompareAxis::Step) == Approx(3.0));
  CHECK(interpolate_val(a, 1500, CompareAxis::Tokens) == Approx(3.5));
  CHECK(interpolate_val(a, 12.5, CompareAxis::Seconds) == Approx(2.5));
  CHECK(interpolate_val(a, 25000, CompareAxis::Flops) == Approx(2.5));  // 2500 tokens * 10 FLOPs
  CHECK(std::isnan(interpolate_val(a, 5, CompareAxis::Step)));            // before the first evaluation
  CHECK(std::isnan(interpolate_val(a, 40, CompareAxis::Step)));
  CHECK(a.peak_mem_gb == Approx(0.3));

  make_run(tmp.file("b"), "10,1000,0,1,4.5,3.0,1,1,100,,0.1,5.0\n20,2000,0,1,3.5,1.0,1,1,100,,0.2,10.0\n", "d", 10.0);
  std::string out;
  REQUIRE(test::run_maskmix(fmt::format("compare {} {}", tmp.file("a"), tmp.file("b")), &out) == 0);
  CHECK_THAT(out, Contains("val@step=20") && Contains("| 3.0000 |") && Contains("| 1.0000 |"));
  make_run(tmp.file("c"), "10,1000,0,1,4.5,3.0,1,1,100,,0.1,5.0\n", "other", 10.0);
  CHECK(test::run_maskmix(fmt::format("compare {} {}", tmp.file("a"), tmp.file("c")), &out) == 1);
  CHECK_THAT(out, Contains("different data") && Contains("--force"));
  CHECK(test::run_maskmix(fmt::format("compare {} {} --force", tmp.file("a"), tmp.file("c")), &out) == 0);
  CHECK(test::run_maskmix(fmt::format("compare {}", tmp.file("nothing")), &out) == 1);
}
