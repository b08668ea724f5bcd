// Deterministic counter-based RNG: value k of a stream is mix(seed, k), so any draw can be reproduced
// (on either backend) from two integers. Initialisation and data order are drawn from it, from the seed.
#pragma once
#include <cmath>
#include <cstdint>

namespace mm {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

class Rng {
 public:
  explicit Rng(uint64_t seed = 0, uint64_t counter = 0) : seed_(splitmix64(seed)), counter_(counter) {}

  uint64_t next_u64() { return splitmix64(seed_ ^ splitmix64(counter_++)); }
  // Uniform in [0, 1) with 24 random bits (exactly representable in float).
  float uniform() { return static_cast<float>(next_u64() >> 40) * (1.0f / 16777216.0f); }
  // Uniform integer in [0, n) (n > 0); multiply-shift, negligible bias for n << 2^64.
  uint64_t below(uint64_t n) { return static_cast<uint64_t>((static_cast<unsigned __int128>(next_u64()) * n) >> 64); }
  // Standard normal by Box-Muller from two draws (the second output is discarded for a simple state).
  float normal() {
    double u1 = (static_cast<double>(next_u64() >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = static_cast<double>(next_u64() >> 11) * (1.0 / 9007199254740992.0);
    return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  }

 private:
  uint64_t seed_, counter_;
};

}  // namespace mm
