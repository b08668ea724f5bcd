// The parameter table: every tensor's name, shape, offset in one flat buffer, and how it is initialised.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.h"

namespace mm {

enum class InitKind { Zeros, Ones, Normal, Uniform };

struct ParamInfo {
  std::string name;             // e.g. "blocks.3.mix.weight"
  std::vector<int64_t> shape;
  size_t offset = 0, numel = 0;  // in elements, within the flat buffer
  InitKind init = InitKind::Zeros;
  float scale = 0;              // std (Normal) or bound (Uniform)
  bool lower_triangular = false;  // a masked mixing matrix [..., To, Ti]: entries j > i stay exactly 0
};

class ParamTable {
 public:
  size_t add(std::string name, std::vector<int64_t> shape, InitKind init, float scale = 0, bool lower_triangular = false);
  const std::vector<ParamInfo>& entries() const { return entries_; }
  const ParamInfo& operator[](size_t i) const { return entries_[i]; }
  size_t total() const { return total_; }
  // Fills `host` (total() floats) with the initial values, drawing from `rng` in table order.
  template <class T>
  void initialise(T* host, Rng& rng) const;
  // Zeroes the upper triangle (j > i) of every lower-triangular entry in `host`.
  template <class T>
  void apply_masks(T* host) const;

 private:
  std::vector<ParamInfo> entries_;
  size_t total_ = 0;
};

}  // namespace mm
