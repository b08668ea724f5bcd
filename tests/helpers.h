// Test helpers: where the shared data is, temp folders, and finite-difference gradient checks.
#pragma once
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "core/rng.h"

namespace mm::test {

inline std::string data_dir() {
  const char* env = std::getenv("MASKMIX_DATA");
  return env ? env : "../shared/data";
}

inline std::string maskmix_bin() {
  const char* env = std::getenv("MASKMIX_BIN");
  return env ? env : "./maskmix";
}

// A fresh folder under /tmp, removed at scope exit.
struct TempDir {
  std::string path;
  TempDir() {
    path = (std::filesystem::temp_directory_path() / ("maskmix-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++))).string();
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string file(const std::string& name) const { return path + "/" + name; }
  static int& counter() {
    static int c = 0;
    return c;
  }
};

inline void write_text(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

inline std::vector<int32_t> random_tokens(size_t n, int vocab, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = static_cast<int32_t>(rng.below(vocab));
  return t;
}

inline std::vector<double> random_vector(size_t n, uint64_t seed, double scale = 1.0) {
  Rng rng(seed);
  std::vector<double> v(n);
  for (double& x : v) x = rng.normal() * scale;
  return v;
}

// Compares analytic gradient `grad` of `loss` w.r.t. `x` with central differences on up to `samples`
// entries (all when x is small). Relative error per entry must stay below `tol`.
inline void check_gradient(const std::string& what, std::vector<double>& x, const std::vector<double>& grad, const std::function<double()>& loss,
                           int samples = 40, double h = 1e-5, double tol = 1e-5) {
  REQUIRE(x.size() == grad.size());
  const size_t n = x.size();
  const size_t step = std::max<size_t>(1, n / samples);
  double worst = 0;
  for (size_t i = 0; i < n; i += step) {
    const double saved = x[i];
    x[i] = saved + h;
    const double up = loss();
    x[i] = saved - h;
    const double down = loss();
    x[i] = saved;
    const double numeric = (up - down) / (2 * h);
    const double err = std::fabs(numeric - grad[i]) / std::max(1.0, std::fabs(numeric) + std::fabs(grad[i]));
    worst = std::max(worst, err);
    if (err > tol) {
      INFO(what << ": entry " << i << " analytic " << grad[i] << " numeric " << numeric);
      CHECK(err <= tol);
      return;
    }
  }
  INFO(what << ": worst relative error " << worst);
  CHECK(worst <= tol);
}

// Runs the maskmix binary with `args`; returns its exit code, and its stdout+stderr in `output`.
inline int run_maskmix(const std::string& args, std::string* output = nullptr) {
  TempDir tmp;
  const std::string log = tmp.file("log");
  const int status = std::system((maskmix_bin() + " " + args + " > " + log + " 2>&1").c_str());
  if (output) {
    std::ifstream in(log);
    output->assign(std::istreambuf_iterator<char>(in), {});
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A small prepared data folder (the shipped validation stories, 10% held out) inside `tmp`.
inline std::string prepare_small(const TempDir& tmp) {
  const std::string out = tmp.file("ts");
  const std::string cmd = fmt::format("prepare --input {0}/tinystories/valid.txt --valid-fraction 0.1 --tokenizer {0}/tokenizers/tok4096.model --out {1}", data_dir(), out);
  REQUIRE(run_maskmix(cmd) == 0);
  return out;
}

inline bool gpu_required() { return std::getenv("MASKMIX_REQUIRE_GPU") != nullptr; }

}  // namespace mm::test
