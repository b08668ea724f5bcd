// CUDA pieces called directly, without the Ops interface: the GELU arithmetic shared by host and device
// (cuda/activations.cuh, on the CPU), and the Hopper fc1 GEMM with GELU in its epilogue
// (cuda/gemm_gelu.cu, on the GPU: skips without a GPU unless MASKMIX_REQUIRE_GPU is set, and on GPUs
// that are not sm_90 or when MASKMIX_FUSED_GELU_GEMM is not 1).
#ifdef MASKMIX_CUDA
#include <cmath>
#include <cstring>

#include "activations.cuh"
#include "gemm_gelu.cuh"
#include "helpers.h"
#include "ops/backend.h"

using namespace mm;

namespace {

uint16_t to_bf16_bits(double x) {  // round to nearest even, as __float2bfloat16_rn
  float f = static_cast<float>(x);
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}
double from_bf16_bits(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}
// |got - want| in units of one bf16 step of want (2^-8 relative) plus 1e-5: fp32 accumulation and fp32
// erf near their cancellations (sums close to 0, GELU far below 0) stay well inside 1e-5.
double error_in_steps(uint16_t got, double want) { return std::abs(from_bf16_bits(got) - want) / (std::abs(want) / 256.0 + 1e-5); }

struct DeviceBytes {
  void* ptr = nullptr;
  explicit DeviceBytes(size_t bytes) { REQUIRE(cudaMalloc(&ptr, bytes) == cudaSuccess); }
  ~DeviceBytes() { cudaFree(ptr); }
  DeviceBytes(const DeviceBytes&) = delete;
  DeviceBytes& operator=(const DeviceBytes&) = delete;
};

}  // namespace

TEST_CASE("normal_cdf (the GELU kernels' Phi) matches erfc: 2e-7 absolute everywhere, 6e-6 relative down to -6", "[ops]") {
  double worst_abs = 0, worst_rel = 0, worst_gelu_grad = 0;
  for (double x = -12; x <= 12; x += 1.0 / 1024) {
    const double exact = 0.5 * std::erfc(-x / std::sqrt(2.0)), got = cuda::normal_cdf(static_cast<float>(x));
    worst_abs = std::max(worst_abs, std::abs(got - exact));
    if (x >= -6) worst_rel = std::max(worst_rel, std::abs(got - exact) / exact);
    const double pdf = std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI), grad = exact + x * pdf;  // GELU'(x)
    worst_gelu_grad = std::max(worst_gelu_grad, std::abs(cuda::gelu_grad(1.f, static_cast<float>(x)) - grad));
  }
  INFO("worst absolute " << worst_abs << ", relative (x >= -6) " << worst_rel << ", GELU' absolute " << worst_gelu_grad);
  CHECK(worst_abs < 2e-7);
  CHECK(worst_rel < 6e-6);
  CHECK(worst_gelu_grad < 5e-7);
  CHECK(cuda::gelu(0.f) == 0.f);
  CHECK(cuda::normal_cdf(0.f) == Approx(0.5).margin(1e-7));
}

TEST_CASE("GPU fused fc1 GEMM + GELU: pre is the rounded product, act is GELU of pre plus bias", "[gpu][ops][bf16]") {
  if (cuda_device_count() == 0) {
    if (test::gpu_required()) FAIL("MASKMIX_REQUIRE_GPU is set but no CUDA GPU was found");
    WARN("no CUDA GPU: GPU test skipped");
    return;
  }
  setenv("MASKMIX_FUSED_GELU_GEMM", "1", 1);  // opt-in (see gemm_gelu.cuh)
  cuda::Context ctx(Precision::Bf16);
  unsetenv("MASKMIX_FUSED_GELU_GEMM");
  // 100 x 4 tiles of 256 x 128 over 132 CTAs (three or four each: the result buffer and the ring are
  // reused across tiles); K = 192 is three slices, the ring's depth
  const int M = 25600, N = 512, K = 192;
  const auto xs = test::random_vector(static_cast<size_t>(M) * K, 71), ws = test::random_vector(static_cast<size_t>(N) * K, 72, 0.1);
  const auto bias = test::random_vector(N, 73);
  std::vector<uint16_t> x(xs.size()), w(ws.size());
  for (size_t i = 0; i < xs.size(); ++i) x[i] = to_bf16_bits(xs[i]);
  for (size_t i = 0; i < ws.size(); ++i) w[i] = to_bf16_bits(ws[i]);
  std::vector<float> bias_f(bias.begin(), bias.end());
  const size_t out_bytes = static_cast<size_t>(M) * N * 2;
  DeviceBytes dx(x.size() * 2), dw(w.size() * 2), dbias(N * sizeof(float)), dpre(out_bytes), dact(out_bytes), dpre2(out_bytes);
  REQUIRE(cudaMemcpy(dx.ptr, x.data(), x.size() * 2, cudaMemcpyHostToDevice) == cudaSuccess);
  REQUIRE(cudaMemcpy(dw.ptr, w.data(), w.size() * 2, cudaMemcpyHostToDevice) == cudaSuccess);
  REQUIRE(cudaMemcpy(dbias.ptr, bias_f.data(), N * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess);
  if (!cuda::gemm_gelu_supported(ctx, M, N, K, static_cast<const float*>(dbias.ptr), {dx.ptr, dw.ptr, dpre.ptr, dact.ptr, dpre2.ptr})) {
    WARN("not an sm_90 GPU: fused GEMM test skipped");
    return;
  }
  auto* pre = static_cast<__nv_bfloat16*>(dpre.ptr);
  const auto* xd = static_cast<const __nv_bfloat16*>(dx.ptr);
  const auto* wd = static_cast<const __nv_bfloat16*>(dw.ptr);
  cuda::gemm_gelu_forward(ctx, pre, static_cast<__nv_bfloat16*>(dact.ptr), xd, wd, static_cast<const float*>(dbias.ptr), M, N, K);
  // pre only (--recompute): the same pre
  cuda::gemm_gelu_forward(ctx, static_cast<__nv_bfloat16*>(dpre2.ptr), nullptr, xd, wd, static_cast<const float*>(dbias.ptr), M, N, K);
  REQUIRE(cudaStreamSynchronize(ctx.stream()) == cudaSuccess);
  std::vector<uint16_t> got_pre(static_cast<size_t>(M) * N), got_act(got_pre.size()), got_pre2(got_pre.size());
  REQUIRE(cudaMemcpy(got_pre.data(), dpre.ptr, out_bytes, cudaMemcpyDeviceToHost) == cudaSuccess);
  REQUIRE(cudaMemcpy(got_act.data(), dact.ptr, out_bytes, cudaMemcpyDeviceToHost) == cudaSuccess);
  REQUIRE(cudaMemcpy(got_pre2.data(), dpre2.ptr, out_bytes, cudaMemcpyDeviceToHost) == cudaSuccess);
  CHECK(got_pre2 == got_pre);

  // every 7th row (all tiles, every row position within a tile over the rows checked), all columns
  double worst_pre = 0, worst_act = 0;
  size_t checked = 0;
  for (int r = 0; r < M; r += 7)
    for (int c = 0; c < N; ++c) {
      double dot = 0;
      for (int k = 0; k < K; ++k) dot += from_bf16_bits(x[static_cast<size_t>(r) * K + k]) * from_bf16_bits(w[static_cast<size_t>(c) * K + k]);
      const size_t at = static_cast<size_t>(r) * N + c;
      worst_pre = std::max(worst_pre, error_in_steps(got_pre[at], dot));
      const double v = from_bf16_bits(got_pre[at]) + static_cast<double>(bias_f[c]);
      worst_act = std::max(worst_act, error_in_steps(got_act[at], 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)))));
      ++checked;
    }
  INFO("checked " << checked << " values; worst pre " << worst_pre << " bf16 steps, worst act " << worst_act);
  CHECK(worst_pre <= 1.0);  // rounded once: at most half a step, one where fp32 sums land across a rounding boundary
  CHECK(worst_act <= 1.0);
}
#endif
