// Run curves read from train.csv/.meta, and the interpolation `maskmix compare` uses (exposed for tests).
#pragma once
#include <map>
#include <string>
#include <vector>

namespace mm {

struct CurvePoint {
  double step = 0, tokens = 0, seconds = 0, train_loss = 0, val_loss = 0;  // val_loss NaN where not evaluated
};

struct RunCurve {
  std::string dir;
  std::vector<CurvePoint> points;
  std::map<std::string, std::string> meta;
  double flops_per_token = 0, bytes_per_token = 0.0 / 0.0, peak_mem_gb = 0, tokens_per_s_sum = 0;
  int tokens_per_s_count = 0;
};

enum class CompareAxis { Step, Tokens, Seconds, Flops };

RunCurve load_run(const std::string& dir);
// Validation loss at x on the axis, linear between evaluations; NaN outside the evaluated range.
double interpolate_val(const RunCurve& run, double x, CompareAxis axis);

}  // namespace mm
