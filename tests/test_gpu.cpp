// GPU tests ([gpu]): CUDA vs the CPU reference per op and per model kind (logits, loss, every gradient
// tensor, 10 AdamW steps), causality and determinism on the GPU, and bit-exact resume through the CLI.
// Without a GPU they skip (with a warning), unless MASKMIX_REQUIRE_GPU is set (make test-gpu).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <tuple>

#include "helpers.h"
#include "model/checkpoint.h"
#include "model/model.h"
#include "ops/backend.h"
#include "ops/cpu_ops.h"

using namespace mm;

namespace {

bool have_gpu() {
  if (cuda_device_count() > 0) return true;
  if (test::gpu_required()) FAIL("MASKMIX_REQUIRE_GPU is set but no CUDA GPU was found");
  WARN("no CUDA GPU: GPU test skipped");
  return false;
}

std::vector<float> to_float(const std::vector<double>& x) { return std::vector<float>(x.begin(), x.end()); }

double relative_error(const std::vector<float>& got, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    num += (got[i] - ref[i]) * (got[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

double relative_error(const std::vector<double>& got, const std::vector<double>& ref) {
  return relative_error(std::vector<float>(got.begin(), got.end()), ref);
}

// x rounded to the nearest bf16 (ties to even), as the GPU rounds GEMM operands in bf16 mode.
double round_bf16(double x) {
  float f = static_cast<float>(x);
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  bits &= 0xffff0000u;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}
std::vector<double> round_bf16(std::vector<double> x) {
  for (double& v : x) v = round_bf16(v);
  return x;
}

// Device array filled from host floats.
struct Dev {
  Ops<float>& ops;
  DeviceArray<float, float> a;
  Dev(Ops<float>& o, const std::vector<float>& host) : ops(o), a(o, host.size()) { o.to_device(a.get(), host.data(), host.size() * sizeof(float)); }
  Dev(Ops<float>& o, size_t n) : ops(o), a(o, n) {}
  float* p() { return a.get(); }
  std::vector<float> host() {
    std::vector<float> h(a.size());
    ops.to_host(h.data(), a.get(), h.size() * sizeof(float));
    return h;
  }
};

const std::vector<std::string> kModels = {"mixer:d32:l2:c16:v64",       "mixer:d32:l2:c16:v64:heads2", "mixer:d32:l2:c16:v64:parallel2",
                                          "mixer:d32:l2:c16:v64:expanded2", "llama:d32:l2:h2:c16:v64", "gpt:d32:l2:h2:c16:v64",
                                          "hybrid:d32:l2:h2:c16:v64"};

}  // namespace

TEST_CASE("GPU masked mix and attention match the CPU reference", "[gpu][ops]") {
  if (!have_gpu()) return;
  auto gpu = make_backend(Device::Cuda, Precision::Fp32);
  CpuOps<double> ref;
  struct Shape { int B, Ti, To, D, G; };
  // the last two at realistic sizes (several GEMM tiles per matrix, two groups)
  for (Shape s : {Shape{3, 16, 16, 8, 1}, Shape{2, 12, 12, 8, 2}, Shape{2, 8, 16, 4, 1}, Shape{2, 16, 8, 4, 1}, Shape{2, 256, 256, 8, 1}, Shape{2, 384, 384, 8, 2}})
  for (bool causal : {true, false}) {
    auto x = test::random_vector(s.B * s.Ti * s.D, 1), w = test::random_vector(s.G * s.To * s.Ti, 2), c = test::random_vector(s.G * s.To, 3);
    auto dy = test::random_vector(s.B * s.To * s.D, 4);
    std::vector<double> y(s.B * s.To * s.D), dx(x.size()), dw(w.size(), 0.0), dc(c.size(), 0.0);
    ref.mix_forward(y.data(), x.data(), w.data(), c.data(), s.B, s.Ti, s.To, s.D, s.G, causal);
    ref.mix_backward(dx.data(), dw.data(), dc.data(), dy.data(), x.data(), w.data(), s.B, s.Ti, s.To, s.D, s.G, causal);
    Dev gx(*gpu, to_float(x)), gw(*gpu, to_float(w)), gc(*gpu, to_float(c)), gdy(*gpu, to_float(dy)), gy(*gpu, y.size()), gdx(*gpu, x.size()),
        gdw(*gpu, w.size()), gdc(*gpu, c.size());
    gpu->mix_forward(gy.p(), gx.p(), gw.p(), gc.p(), s.B, s.Ti, s.To, s.D, s.G, causal);
    gpu->mix_backward(gdx.p(), gdw.p(), gdc.p(), gdy.p(), gx.p(), gw.p(), s.B, s.Ti, s.To, s.D, s.G, causal);
    CHECK(relative_error(gy.host(), y) < 1e-5);
    CHECK(relative_error(gdx.host(), dx) < 1e-5);
    CHECK(relative_error(gdw.host(), dw) < 1e-5);
    CHECK(relative_error(gdc.host(), dc) < 1e-5);
  }
  const int B = 2, T = 24, D = 16, H = 2;
  for (bool rope : {false, true}) {
    INFO("rope " << rope);
    auto qkv = test::random_vector(B * T * 3 * D, 5), dout = test::random_vector(B * T * D, 6);
    std::vector<double> out(B * T * D), probs(B * H * T * T), dqkv(qkv.size());
    ref.attention_forward(out.data(), probs.data(), qkv.data(), B, T, D, H, rope);
    ref.attention_backward(dqkv.data(), dout.data(), qkv.data(), out.data(), probs.data(), B, T, D, H, rope);
    Dev gq(*gpu, to_float(qkv)), gd(*gpu, to_float(dout)), go(*gpu, out.size()), gp(*gpu, probs.size()), gdq(*gpu, qkv.size());
    gpu->attention_forward(go.p(), gp.p(), gq.p(), B, T, D, H, rope);
    gpu->attention_backward(gdq.p(), gd.p(), gq.p(), go.p(), gp.p(), B, T, D, H, rope);
    CHECK(relative_error(go.host(), out) < 1e-5);
    CHECK(relative_error(gp.host(), probs) < 1e-5);
    CHECK(relative_error(gdq.host(), dqkv) < 1e-5);
  }
}

TEST_CASE("GPU embedding backward matches the CPU reference, with a token filling most rows", "[gpu][ops]") {
  if (!have_gpu()) return;
  auto gpu = make_backend(Device::Cuda, Precision::Fp32);
  CpuOps<double> ref;
  const int B = 4, T = 300, N = B * T, V = 50;
  for (int D : {40, 1024}) {  // rows that are not whole warps; a row wider than the shared budget of eight warps
    INFO("D " << D);
    // token 7 fills 70% of the rows (as the pad of left-padded stories does): many 64-row pieces
    auto tokens = test::random_tokens(N, V - 10, 81);  // tokens 40..49 never occur
    Rng rng(82);
    for (auto& t : tokens)
      if (rng.uniform() < 0.7) t = 7;
    auto dout = test::random_vector(static_cast<size_t>(N) * D, 83), wte0 = test::random_vector(static_cast<size_t>(V) * D, 84);
    std::vector<double> dwte = wte0, dwpe(static_cast<size_t>(T) * D, 0.0);  // dwte accumulates onto what it holds
    ref.embedding_backward(dwte.data(), dwpe.data(), dout.data(), tokens.data(), N, T, D, V);
    Dev gdout(*gpu, to_float(dout)), gdwpe(*gpu, dwpe.size());
    DeviceArray<int32_t, float> gtokens(*gpu, N);
    gpu->to_device(gtokens.get(), tokens.data(), N * sizeof(int32_t));
    std::vector<float> first;
    for (int run = 0; run < 2; ++run) {
      Dev gdwte(*gpu, to_float(wte0));
      gpu->embedding_backward(gdwte.p(), run == 0 ? gdwpe.p() : nullptr, gdout.p(), gtokens.get(), N, T, D, V);
      const auto got = gdwte.host();
      if (run == 0) {
        CHECK(relative_error(got, dwte) < 1e-6);
        CHECK(relative_error(gdwpe.host(), dwpe) < 1e-6);
        first = got;
      } else {
        CHECK(got == first);  // the same summation order on every run
      }
    }
  }
}

TEST_CASE("GPU LayerNorm and RMSNorm (register-resident and fallback widths) match the CPU reference", "[gpu][ops]") {
  if (!have_gpu()) return;
  auto gpu = make_backend(Device::Cuda, Precision::Fp32);
  CpuOps<double> ref;
  for (int D : {32, 48, 512, 1536}) {  // 32 and 512: one-pass kernels; 48 and 1536: the general ones
    INFO("D " << D);
    const int N = 37;
    auto x = test::random_vector(N * D, 51), w = test::random_vector(D, 52), b = test::random_vector(D, 53), dy = test::random_vector(N * D, 54),
         skip = test::random_vector(N * D, 55);
    // LayerNorm: out, dx (with the residual gradient added), dw, db
    std::vector<double> out(N * D), mean(N), rstd(N), dx(N * D), dw(D, 0.0), db(D, 0.0);
    ref.layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, D);
    ref.layernorm_backward(dx.data(), dw.data(), db.data(), dy.data(), skip.data(), x.data(), w.data(), mean.data(), rstd.data(), N, D);
    Dev gx(*gpu, to_float(x)), gw(*gpu, to_float(w)), gb(*gpu, to_float(b)), gdy(*gpu, to_float(dy)), gskip(*gpu, to_float(skip)), gout(*gpu, N * D),
        gmean(*gpu, N), grstd(*gpu, N), gdx(*gpu, N * D), gdw(*gpu, D), gdb(*gpu, D);
    gpu->layernorm_forward(gout.p(), gmean.p(), grstd.p(), gx.p(), gw.p(), gb.p(), N, D);
    gpu->layernorm_backward(gdx.p(), gdw.p(), gdb.p(), gdy.p(), gskip.p(), gx.p(), gw.p(), gmean.p(), grstd.p(), N, D);
    CHECK(relative_error(gout.host(), out) < 1e-5);
    CHECK(relative_error(gdx.host(), dx) < 1e-5);
    CHECK(relative_error(gdw.host(), dw) < 1e-5);
    CHECK(relative_error(gdb.host(), db) < 1e-5);
    // RMSNorm
    std::vector<double> rout(N * D), rrstd(N), rdx(N * D), rdw(D, 0.0);
    ref.rmsnorm_forward(rout.data(), rrstd.data(), x.data(), w.data(), N, D);
    ref.rmsnorm_backward(rdx.data(), rdw.data(), dy.data(), skip.data(), x.data(), w.data(), rrstd.data(), N, D);
    Dev gdw2(*gpu, D);
    gpu->rmsnorm_forward(gout.p(), grstd.p(), gx.p(), gw.p(), N, D);
    gpu->rmsnorm_backward(gdx.p(), gdw2.p(), gdy.p(), gskip.p(), gx.p(), gw.p(), grstd.p(), N, D);
    CHECK(relative_error(gout.host(), rout) < 1e-5);
    CHECK(relative_error(gdx.host(), rdx) < 1e-5);
    CHECK(relative_error(gdw2.host(), rdw) < 1e-5);
  }
}

TEST_CASE("GPU bf16 GEMMs obey the ratio rule (DESIGN 5.4) against the CPU with bf16-rounded operands", "[gpu][ops][bf16]") {
  if (!have_gpu()) return;
  // error(GPU bf16 vs CPU double) <= 2 x error(CPU double on bf16-rounded operands vs CPU double) + 1e-6
  auto gpu = make_backend(Device::Cuda, Precision::Bf16);
  CpuOps<double> ref;
  const int N = 48, IC = 40, OC = 24;
  auto x = test::random_vector(N * IC, 21), w = test::random_vector(OC * IC, 22), b = test::random_vector(OC, 23), dy = test::random_vector(N * OC, 24);
  auto linear = [&](const std::vector<double>& xs, const std::vector<double>& ws, const std::vector<double>& dys) {
    std::vector<double> y(N * OC), dx(x.size()), dw(w.size(), 0.0), db(b.size(), 0.0);
    ref.linear_forward(y.data(), xs.data(), ws.data(), b.data(), N, IC, OC);
    ref.linear_backward(dx.data(), dw.data(), db.data(), dys.data(), xs.data(), ws.data(), N, IC, OC);
    return std::vector<std::vector<double>>{y, dx, dw};
  };
  const auto exact = linear(x, w, dy), rounded = linear(round_bf16(x), round_bf16(w), round_bf16(dy));
  Dev gx(*gpu, to_float(x)), gw(*gpu, to_float(w)), gb(*gpu, to_float(b)), gdy(*gpu, to_float(dy)), gy(*gpu, N * OC), gdx(*gpu, x.size()),
      gdw(*gpu, w.size()), gdb(*gpu, b.size());
  gpu->linear_forward(gy.p(), gx.p(), gw.p(), gb.p(), N, IC, OC);
  gpu->linear_backward(gdx.p(), gdw.p(), gdb.p(), gdy.p(), gx.p(), gw.p(), N, IC, OC);
  const std::vector<std::vector<float>> got = {gy.host(), gdx.host(), gdw.host()};
  for (int k = 0; k < 3; ++k) {
    INFO("output " << k << " (y, dx, dw)");
    const double budget = relative_error(rounded[k], exact[k]);
    CHECK(budget > 1e-5);  // the rounding is visible, so the rule is not vacuous
    CHECK(relative_error(got[k], exact[k]) <= 2 * budget + 1e-6);
  }
  // the masked mix (a strided, batched GEMM over a masked matrix)
  const int B = 2, T = 256, D = 8;
  auto mx = test::random_vector(B * T * D, 25), mw = test::random_vector(T * T, 26), mc = test::random_vector(T, 27);
  auto mix = [&](const std::vector<double>& xs, const std::vector<double>& ws) {
    std::vector<double> y(B * T * D);
    ref.mix_forward(y.data(), xs.data(), ws.data(), mc.data(), B, T, T, D, 1, true);
    return y;
  };
  const auto mix_exact = mix(mx, mw), mix_rounded = mix(round_bf16(mx), round_bf16(mw));
  Dev gmx(*gpu, to_float(mx)), gmw(*gpu, to_float(mw)), gmc(*gpu, to_float(mc)), gmy(*gpu, B * T * D);
  gpu->mix_forward(gmy.p(), gmx.p(), gmw.p(), gmc.p(), B, T, T, D, 1, true);
  CHECK(relative_error(gmy.host(), mix_exact) <= 2 * relative_error(mix_rounded, mix_exact) + 1e-6);
}

TEST_CASE("GPU fused (flash) attention at bf16 obeys the ratio rule against the CPU reference", "[gpu][ops][bf16]") {
  if (!have_gpu()) return;
  auto gpu = make_backend(Device::Cuda, Precision::Bf16);
  CpuOps<double> ref;
  CHECK_FALSE(gpu->attention_is_fused(512, 2));  // head size 256 takes the GEMM + softmax path
  CHECK_FALSE(make_backend(Device::Cuda, Precision::Tf32)->attention_is_fused(512, 4));
  struct Shape { int B, T, D, H; };
  // head sizes 16, 32, 64, 128; lengths that are not multiples of the kernels' 64- and 32-row tiles
  for (Shape s : {Shape{2, 24, 32, 2}, Shape{2, 77, 64, 2}, Shape{1, 130, 128, 2}, Shape{2, 200, 256, 2}})
  for (bool rope : {false, true}) {
    INFO("B" << s.B << " T" << s.T << " D" << s.D << " H" << s.H << " rope " << rope);
    REQUIRE(gpu->attention_is_fused(s.D, s.H));
    REQUIRE(gpu->attention_state_size(s.B, s.T, s.D, s.H) == static_cast<size_t>(s.B) * s.H * s.T);
    const size_t n = static_cast<size_t>(s.B) * s.T * s.D;
    auto qkv = test::random_vector(3 * n, 31), dout = test::random_vector(n, 32);
    auto attention = [&](const std::vector<double>& x, const std::vector<double>& dy) {
      std::vector<double> out(n), probs(static_cast<size_t>(s.B) * s.H * s.T * s.T), dx(x.size());
      ref.attention_forward(out.data(), probs.data(), x.data(), s.B, s.T, s.D, s.H, rope);
      ref.attention_backward(dx.data(), dy.data(), x.data(), out.data(), probs.data(), s.B, s.T, s.D, s.H, rope);
      return std::pair{out, dx};
    };
    const auto [out, dqkv] = attention(qkv, dout);
    const auto [out_rounded, dqkv_rounded] = attention(round_bf16(qkv), round_bf16(dout));
    Dev gq(*gpu, to_float(qkv)), gd(*gpu, to_float(dout)), go(*gpu, n), gl(*gpu, gpu->attention_state_size(s.B, s.T, s.D, s.H)), gdq(*gpu, 3 * n);
    gpu->attention_forward(go.p(), gl.p(), gq.p(), s.B, s.T, s.D, s.H, rope);
    gpu->attention_backward(gdq.p(), gd.p(), gq.p(), go.p(), gl.p(), s.B, s.T, s.D, s.H, rope);
    // The kernels also round the probabilities (and dS) to bf16 for their second products, hence 4x.
    const double out_budget = relative_error(out_rounded, out), grad_budget = relative_error(dqkv_rounded, dqkv);
    CHECK(out_budget > 1e-5);
    CHECK(relative_error(go.host(), out) <= 4 * out_budget + 1e-6);
    CHECK(relative_error(gdq.host(), dqkv) <= 4 * grad_budget + 1e-6);
  }
}

// A sublayer's pre-norm for the tests: random weights (and bias), its statistics and gradients on one
// backend; `kind` None gives the empty PreNorm.
template <class T>
struct TestNorm {
  NormKind kind;
  std::vector<T> w, b, mean, rstd, dw, db;
  TestNorm(NormKind k, const std::vector<double>& wv, const std::vector<double>& bv, int N)
      : kind(k), w(wv.begin(), wv.end()), b(bv.begin(), bv.end()), mean(N), rstd(N), dw(wv.size(), 0), db(bv.size(), 0) {}
  PreNorm<T> get(const T* dskip) {
    if (kind == NormKind::None) return {};
    return {kind, w.data(), b.data(), mean.data(), rstd.data(), dw.data(), db.data(), dskip};
  }
};
// The same on the GPU.
struct GpuNorm {
  NormKind kind;
  Dev w, b, mean, rstd, dw, db;
  GpuNorm(Ops<float>& gpu, NormKind k, const std::vector<double>& wv, const std::vector<double>& bv, int N)
      : kind(k), w(gpu, to_float(wv)), b(gpu, to_float(bv)), mean(gpu, N), rstd(gpu, N), dw(gpu, wv.size()), db(gpu, bv.size()) {}
  PreNorm<float> get(const float* dskip) {
    if (kind == NormKind::None) return {};
    return {kind, w.p(), b.p(), mean.p(), rstd.p(), dw.p(), db.p(), dskip};
  }
};
const char* norm_name(NormKind k) { return k == NormKind::None ? "none" : k == NormKind::LayerNorm ? "layernorm" : "rmsnorm"; }

TEST_CASE("GPU bf16 self-attention sublayer (qkv and attention output kept in bf16) obeys the ratio rule", "[gpu][ops][bf16]") {
  if (!have_gpu()) return;
  auto gpu = make_backend(Device::Cuda, Precision::Bf16);
  CpuOps<double> ref;
  struct Shape { int B, T, D, H; bool rope, biases; NormKind norm; };
  // Llama (RoPE, no biases, RMSNorm inside) and GPT (biases) style; head sizes 32, 16 and 128; lengths off the tiles
  for (Shape s : {Shape{2, 77, 64, 2, true, false, NormKind::RmsNorm}, Shape{2, 40, 64, 4, false, true, NormKind::None},
                  Shape{1, 130, 256, 2, true, true, NormKind::LayerNorm}, Shape{1, 130, 256, 2, true, false, NormKind::None}}) {
    INFO("B" << s.B << " T" << s.T << " D" << s.D << " H" << s.H << " rope " << s.rope << " biases " << s.biases << " norm " << norm_name(s.norm));
    const int N = s.B * s.T, D = s.D;
    const size_t ND = static_cast<size_t>(N) * D;
    const bool prenorm = s.norm != NormKind::None;
    REQUIRE(gpu->self_attention_state_size(s.B, s.T, D, s.H, prenorm) == 5 * ND / 2 + static_cast<size_t>(s.B) * s.H * s.T);  // bf16 qkv, a, h; fp32 lse
    auto x = test::random_vector(ND, 51), wqkv = test::random_vector(3 * D * D, 52), bqkv = test::random_vector(3 * D, 53);
    auto wo = test::random_vector(D * D, 54), bo = test::random_vector(D, 55), dy = test::random_vector(ND, 56), skip = test::random_vector(ND, 57);
    auto norm_w = test::random_vector(D, 58), norm_b = test::random_vector(D, 59), dskip = test::random_vector(ND, 60);
    for (double& v : norm_w) v += 1.0;
    for (auto* w : {&wqkv, &wo})
      for (double& v : *w) v *= prenorm ? 0.3 / std::sqrt(3.0) : 0.3;  // scores of order one, so the softmax is neither flat nor one-hot
    // outputs: y, dx, dwqkv, dbqkv, dwo, dbo, dnorm_w, dnorm_b
    auto sublayer = [&](const std::vector<double>& xs, const std::vector<double>& wq, const std::vector<double>& wos, const std::vector<double>& dys) {
      std::vector<double> y(ND), state(ref.self_attention_state_size(s.B, s.T, D, s.H, prenorm)), dx(ND), dwq(wqkv.size(), 0.0), dbq(bqkv.size(), 0.0),
          dwo(wo.size(), 0.0), dbo(bo.size(), 0.0), da(ND), dqkv(3 * ND);
      TestNorm<double> norm(s.norm, norm_w, norm_b, N);
      ref.self_attention_forward(y.data(), state.data(), xs.data(), norm.get(nullptr), wq.data(), s.biases ? bqkv.data() : nullptr, wos.data(),
                                 s.biases ? bo.data() : nullptr, skip.data(), s.B, s.T, D, s.H, s.rope);
      ref.self_attention_backward(dx.data(), dwq.data(), dbq.data(), dwo.data(), dbo.data(), dys.data(), xs.data(), state.data(), norm.get(dskip.data()),
                                  wq.data(), wos.data(), s.B, s.T, D, s.H, s.rope, da.data(), dqkv.data());
      return std::vector<std::vector<double>>{y, dx, dwq, dbq, dwo, dbo, norm.dw, norm.db};
    };
    const auto exact = sublayer(x, wqkv, wo, dy), rounded = sublayer(round_bf16(x), round_bf16(wqkv), round_bf16(wo), round_bf16(dy));
    Dev gx(*gpu, to_float(x)), gwq(*gpu, to_float(wqkv)), gbq(*gpu, to_float(bqkv)), gwo(*gpu, to_float(wo)), gbo(*gpu, to_float(bo)), gdy(*gpu, to_float(dy)),
        gskip(*gpu, to_float(skip)), gdskip(*gpu, to_float(dskip)), gy(*gpu, ND), gstate(*gpu, gpu->self_attention_state_size(s.B, s.T, D, s.H, prenorm)),
        gdx(*gpu, ND), gdwq(*gpu, wqkv.size()), gdbq(*gpu, bqkv.size()), gdwo(*gpu, wo.size()), gdbo(*gpu, bo.size()), gda(*gpu, ND), gdqkv(*gpu, 3 * ND);
    GpuNorm gnorm(*gpu, s.norm, norm_w, norm_b, N);
    gpu->self_attention_forward(gy.p(), gstate.p(), gx.p(), gnorm.get(nullptr), gwq.p(), s.biases ? gbq.p() : nullptr, gwo.p(), s.biases ? gbo.p() : nullptr,
                                gskip.p(), s.B, s.T, D, s.H, s.rope);
    // without a norm the bf16 backend keeps its input in the state and never reads x in backward
    gpu->self_attention_backward(gdx.p(), gdwq.p(), gdbq.p(), gdwo.p(), gdbo.p(), gdy.p(), prenorm ? gx.p() : nullptr, gstate.p(), gnorm.get(gdskip.p()),
                                 gwq.p(), gwo.p(), s.B, s.T, D, s.H, s.rope, gda.p(), gdqkv.p());
    const std::vector<std::vector<float>> got = {gy.host(), gdx.host(), gdwq.host(), gdbq.host(), gdwo.host(), gdbo.host(), gnorm.dw.host(), gnorm.db.host()};
    for (int k = 0; k < 8; ++k) {
      if ((k == 3 || k == 5) && !s.biases) continue;
      if ((k == 6 && !prenorm) || (k == 7 && s.norm != NormKind::LayerNorm)) continue;
      INFO("output " << k << " (y, dx, dwqkv, dbqkv, dwo, dbo, dnorm_w, dnorm_b)");
      const double budget = relative_error(rounded[k], exact[k]), error = relative_error(got[k], exact[k]);
      INFO("budget " << budget << " error " << error);
      CHECK(budget > 1e-5);
      // h, qkv, the probabilities, a, da, dS, dqkv and dh are rounded to bf16 as well (each where a GEMM takes it)
      CHECK(error <= 4 * budget + 1e-6);
    }
    // out == nullptr rebuilds the same state (--recompute)
    const std::vector<float> state = gstate.host();
    gpu->zero(gstate.p(), state.size());
    gpu->self_attention_forward(nullptr, gstate.p(), gx.p(), gnorm.get(nullptr), gwq.p(), s.biases ? gbq.p() : nullptr, gwo.p(), s.biases ? gbo.p() : nullptr,
                                nullptr, s.B, s.T, D, s.H, s.rope);
    CHECK(gstate.host() == state);
  }
}

// One bf16 feed-forward sublayer on the GPU (forward, backward) checked against the CPU in double by the
// ratio rule (skipped when !with_reference); returns the GPU's outputs y, dx, dw1, db1, dw2, db2,
// dnorm_w, dnorm_b.
std::vector<std::vector<float>> check_ffn_sublayer(Ops<float>& gpu, NormKind norm_kind, FfnActivation act, int N, int D, int F, bool with_reference = true) {
  CpuOps<double> ref;
  const int Fp = ffn_pre_width(F, act);
  const bool prenorm = norm_kind != NormKind::None;
  auto x = test::random_vector(N * D, 41), w1 = test::random_vector(Fp * D, 42), b1 = test::random_vector(Fp, 43);
  auto w2 = test::random_vector(D * F, 44), b2 = test::random_vector(D, 45), dy = test::random_vector(N * D, 46), skip = test::random_vector(N * D, 47);
  auto norm_w = test::random_vector(D, 48), norm_b = test::random_vector(D, 49), dskip = test::random_vector(N * D, 50);
  for (double& v : norm_w) v += 1.0;
  // outputs: y, dx, dw1, db1, dw2, db2, dnorm_w, dnorm_b
  auto sublayer = [&](const std::vector<double>& xs, const std::vector<double>& w1s, const std::vector<double>& w2s, const std::vector<double>& dys) {
    std::vector<double> y(N * D), state(ref.ffn_state_size(N, D, F, act, prenorm)), dx(N * D), dw1(w1.size(), 0.0), db1(b1.size(), 0.0),
        dw2(w2.size(), 0.0), db2(b2.size(), 0.0), dact(static_cast<size_t>(N) * F), dpre(static_cast<size_t>(N) * Fp);
    TestNorm<double> norm(norm_kind, norm_w, norm_b, N);
    ref.ffn_forward(y.data(), state.data(), xs.data(), norm.get(nullptr), w1s.data(), b1.data(), w2s.data(), b2.data(), skip.data(), N, D, F, act);
    ref.ffn_backward(dx.data(), dw1.data(), db1.data(), dw2.data(), db2.data(), dys.data(), xs.data(), state.data(), norm.get(dskip.data()), w1s.data(),
                     b1.data(), w2s.data(), N, D, F, act, dact.data(), dpre.data());
    return std::vector<std::vector<double>>{y, dx, dw1, db1, dw2, db2, norm.dw, norm.db};
  };
  std::vector<std::vector<double>> exact, rounded;
  if (with_reference) exact = sublayer(x, w1, w2, dy), rounded = sublayer(round_bf16(x), round_bf16(w1), round_bf16(w2), round_bf16(dy));
  Dev gx(gpu, to_float(x)), gw1(gpu, to_float(w1)), gb1(gpu, to_float(b1)), gw2(gpu, to_float(w2)), gb2(gpu, to_float(b2)), gdy(gpu, to_float(dy)),
      gskip(gpu, to_float(skip)), gdskip(gpu, to_float(dskip)), gy(gpu, N * D), gstate(gpu, gpu.ffn_state_size(N, D, F, act, prenorm)), gdx(gpu, N * D),
      gdw1(gpu, w1.size()), gdb1(gpu, b1.size()), gdw2(gpu, w2.size()), gdb2(gpu, b2.size()), gdact(gpu, static_cast<size_t>(N) * F),
      gdpre(gpu, static_cast<size_t>(N) * Fp);
  GpuNorm gnorm(gpu, norm_kind, norm_w, norm_b, N);
  // bf16 h and pre; act is not kept (backward writes it again from pre, so dw2 below checks it)
  CHECK(gpu.ffn_state_size(N, D, F, act, prenorm) == (static_cast<size_t>(N) * (D + Fp) + 1) / 2);
  gpu.ffn_forward(gy.p(), gstate.p(), gx.p(), gnorm.get(nullptr), gw1.p(), gb1.p(), gw2.p(), gb2.p(), gskip.p(), N, D, F, act);
  const std::vector<float> state = gstate.host();
  // without a norm the bf16 backend keeps its input in the state and never reads x in backward
  gpu.ffn_backward(gdx.p(), gdw1.p(), gdb1.p(), gdw2.p(), gdb2.p(), gdy.p(), prenorm ? gx.p() : nullptr, gstate.p(), gnorm.get(gdskip.p()), gw1.p(),
                   gb1.p(), gw2.p(), N, D, F, act, gdact.p(), gdpre.p());
  std::vector<std::vector<float>> got = {gy.host(), gdx.host(), gdw1.host(), gdb1.host(), gdw2.host(), gdb2.host(), gnorm.dw.host(), gnorm.db.host()};
  for (int k = 0; k < 8 && with_reference; ++k) {
    if ((k == 6 && !prenorm) || (k == 7 && norm_kind != NormKind::LayerNorm)) continue;
    INFO("output " << k << " (y, dx, dw1, db1, dw2, db2, dnorm_w, dnorm_b)");
    const double budget = relative_error(rounded[k], exact[k]), error = relative_error(got[k], exact[k]);
    INFO("budget " << budget << " error " << error);
    CHECK(budget > 1e-5);  // the rounding is visible, so the rule is not vacuous
    // the kernels also round h, pre, act, the two hidden gradients and dh to bf16, hence 4x
    CHECK(error <= 4 * budget + 1e-6);
  }
  // out == nullptr (--recompute) rebuilds the same state
  gpu.zero(gstate.p(), state.size());
  gpu.ffn_forward(nullptr, gstate.p(), gx.p(), gnorm.get(nullptr), gw1.p(), gb1.p(), gw2.p(), gb2.p(), nullptr, N, D, F, act);
  CHECK(gstate.host() == state);
  return got;
}

TEST_CASE("GPU bf16 feed-forward sublayer (hidden activations in bf16) obeys the ratio rule", "[gpu][ops][bf16]") {
  if (!have_gpu()) return;
  auto gpu = make_backend(Device::Cuda, Precision::Bf16);
  for (NormKind norm_kind : {NormKind::None, NormKind::LayerNorm, NormKind::RmsNorm})
  for (FfnActivation act : {FfnActivation::Gelu, FfnActivation::SwiGlu})
  for (int F : {64, 36, 4160}) {  // rows in groups of 8, rows of 36 (the one-value kernels), rows wider than a block
    INFO((act == FfnActivation::Gelu ? "gelu" : "swiglu") << " F" << F << " norm " << norm_name(norm_kind));
    check_ffn_sublayer(*gpu, norm_kind, act, 41, 24, F);
  }
}

// Shapes in whole 256 x 128 x 64 tiles take the Hopper fc1 GEMM with GELU in its epilogue
// (gemm_gelu.cu) on an sm_90 GPU when MASKMIX_FUSED_GELU_GEMM=1 (opt-in), so both paths are checked
// against the CPU (small shapes) and against each other (a shape of 264 tiles, two per CTA).
TEST_CASE("GPU feed-forward with GELU fused into its GEMM obeys the ratio rule and agrees with the unfused path", "[gpu][ops][bf16]") {
  if (!have_gpu()) return;
  setenv("MASKMIX_FUSED_GELU_GEMM", "1", 1);
  auto fused = make_backend(Device::Cuda, Precision::Bf16);
  unsetenv("MASKMIX_FUSED_GELU_GEMM");
  auto unfused = make_backend(Device::Cuda, Precision::Bf16);
  for (NormKind norm_kind : {NormKind::LayerNorm, NormKind::None})
  for (auto [N, D, F] : {std::tuple{256, 64, 512}, std::tuple{512, 192, 256}, std::tuple{8448, 64, 1024}}) {
    INFO("N" << N << " D" << D << " F" << F << " norm " << norm_name(norm_kind));
    const bool small = N < 1000;
    const auto a = check_ffn_sublayer(*fused, norm_kind, FfnActivation::Gelu, N, D, F, small);
    const auto b = check_ffn_sublayer(*unfused, norm_kind, FfnActivation::Gelu, N, D, F, small);
    for (size_t k = 0; k < 6; ++k) {
      INFO("output " << k << " (y, dx, dw1, db1, dw2, db2)");
      std::vector<double> ref(b[k].begin(), b[k].end());
      CHECK(relative_error(a[k], ref) < 2e-2);  // the same bf16 roundings of differently ordered sums
    }
  }
}

TEST_CASE("GPU bf16 mixing sublayer (normalized input kept in bf16) obeys the ratio rule", "[gpu][ops][bf16]") {
  if (!have_gpu()) return;
  auto gpu = make_backend(Device::Cuda, Precision::Bf16);
  CpuOps<double> ref;
  for (NormKind norm_kind : {NormKind::LayerNorm, NormKind::None})
  for (bool causal : {true, false})
  for (int T : {70, 256})
  for (int D : {24, 6, 64})  // rows of float4s, rows that are not, and a width the norm holds in registers
  for (bool skip_is_x : {false, true}) {  // a pre-norm block's residual is its input: the norm's pass writes x + c first
    const int B = 2, N = B * T;
    const size_t ND = static_cast<size_t>(N) * D;
    const bool prenorm = norm_kind != NormKind::None;
    INFO("T" << T << " D" << D << " causal " << causal << " norm " << norm_name(norm_kind) << " skip is x " << skip_is_x);
    auto x = test::random_vector(ND, 61), w = test::random_vector(static_cast<size_t>(T) * T, 62), c = test::random_vector(T, 63);
    auto dy = test::random_vector(ND, 64), skip = test::random_vector(ND, 65), dskip = test::random_vector(ND, 66);
    auto norm_w = test::random_vector(D, 67), norm_b = test::random_vector(D, 68);
    for (double& v : norm_w) v += 1.0;
    // outputs: y, dx, dw, dc, dnorm_w, dnorm_b
    auto sublayer = [&](const std::vector<double>& xs, const std::vector<double>& ws, const std::vector<double>& dys) {
      std::vector<double> y(ND), state(ref.mix_sublayer_state_size(B, T, D)), dx(ND), dw(w.size(), 0.0), dc(c.size(), 0.0), dh(ND);
      TestNorm<double> norm(norm_kind, norm_w, norm_b, N);
      ref.mix_sublayer_forward(y.data(), state.data(), xs.data(), norm.get(nullptr), ws.data(), c.data(), skip_is_x ? xs.data() : skip.data(), B, T, D, causal);
      ref.mix_sublayer_backward(dx.data(), dw.data(), dc.data(), dys.data(), xs.data(), state.data(), norm.get(dskip.data()), ws.data(), B, T, D, causal,
                                dh.data());
      return std::vector<std::vector<double>>{y, dx, dw, dc, norm.dw, norm.db};
    };
    const auto exact = sublayer(x, w, dy), rounded = sublayer(round_bf16(x), round_bf16(w), round_bf16(dy));
    Dev gx(*gpu, to_float(x)), gw(*gpu, to_float(w)), gc(*gpu, to_float(c)), gdy(*gpu, to_float(dy)), gskip(*gpu, to_float(skip)),
        gdskip(*gpu, to_float(dskip)), gy(*gpu, ND), gstate(*gpu, gpu->mix_sublayer_state_size(B, T, D)), gdx(*gpu, ND), gdw(*gpu, w.size()),
        gdc(*gpu, c.size()), gdh(*gpu, ND);
    CHECK(gpu->mix_sublayer_state_size(B, T, D) == ND / 2);  // h in bf16
    GpuNorm gnorm(*gpu, norm_kind, norm_w, norm_b, N);
    gpu->mix_sublayer_forward(gy.p(), gstate.p(), gx.p(), gnorm.get(nullptr), gw.p(), gc.p(), skip_is_x ? gx.p() : gskip.p(), B, T, D, causal);
    gpu->mix_sublayer_backward(gdx.p(), gdw.p(), gdc.p(), gdy.p(), gx.p(), gstate.p(), gnorm.get(gdskip.p()), gw.p(), B, T, D, causal, gdh.p());
    const std::vector<std::vector<float>> got = {gy.host(), gdx.host(), gdw.host(), gdc.host(), gnorm.dw.host(), gnorm.db.host()};
    for (int k = 0; k < 6; ++k) {
      if (k == 3) {  // the bias gradient sums dy exactly in fp32
        CHECK(relative_error(got[k], exact[k]) < 1e-5);
        continue;
      }
      if (k >= 4 && !prenorm) continue;
      INFO("output " << k << " (y, dx, dw, dc, dnorm_w, dnorm_b)");
      const double budget = relative_error(rounded[k], exact[k]), error = relative_error(got[k], exact[k]);
      INFO("budget " << budget << " error " << error);
      CHECK(budget > 1e-5);
      CHECK(error <= 4 * budget + 1e-6);  // h and dh are rounded to bf16 as well
    }
    if (causal) {  // dw's upper triangle stays exactly zero
      const std::vector<float> dw_host = got[2];
      bool upper_zero = true;
      for (int i = 0; i < T; ++i)
        for (int j = i + 1; j < T; ++j) upper_zero = upper_zero && dw_host[static_cast<size_t>(i) * T + j] == 0.f;
      CHECK(upper_zero);
    }
  }
}

TEST_CASE("GPU bf16 head + loss (bf16 logits and gradients) obeys the ratio rule", "[gpu][ops][bf16]") {
  if (!have_gpu()) return;
  auto gpu = make_backend(Device::Cuda, Precision::Bf16);
  CpuOps<double> ref;
  const int N = 45, D = 32;
  for (int V : {200, 4096, 4100}) {  // rows in registers (one and two 16-byte vectors a thread), and the two-pass kernel
  INFO("V " << V);
  auto top = test::random_vector(N * D, 71), w = test::random_vector(V * D, 72);
  auto targets = test::random_tokens(N, V, 73);
  targets[5] = -1;
  const double dscale = 1.0 / (N - 1);
  // outputs: losses, dtop, dw
  auto head = [&](const std::vector<double>& tops, const std::vector<double>& ws) {
    std::vector<double> losses(N), dlogits(static_cast<size_t>(N) * V), dtop(N * D), dw(w.size(), 0.0);
    ref.head_loss_forward(losses.data(), dlogits.data(), tops.data(), ws.data(), targets.data(), N, D, V, &dscale);
    ref.head_loss_backward(dtop.data(), dw.data(), dlogits.data(), tops.data(), ws.data(), N, D, V);
    return std::vector<std::vector<double>>{losses, dtop, dw};
  };
  const auto exact = head(top, w), rounded = head(round_bf16(top), round_bf16(w));
  Dev gtop(*gpu, to_float(top)), gw(*gpu, to_float(w)), glosses(*gpu, N), gdlogits(*gpu, static_cast<size_t>(N) * V), gdtop(*gpu, N * D), gdw(*gpu, w.size());
  DeviceArray<int32_t, float> gtargets(*gpu, N);
  gpu->to_device(gtargets.get(), targets.data(), N * sizeof(int32_t));
  Dev gscale(*gpu, std::vector<float>{static_cast<float>(dscale)});
  gpu->head_loss_forward(glosses.p(), gdlogits.p(), gtop.p(), gw.p(), gtargets.get(), N, D, V, gscale.p());
  gpu->head_loss_backward(gdtop.p(), gdw.p(), gdlogits.p(), gtop.p(), gw.p(), N, D, V);
  const std::vector<std::vector<float>> got = {glosses.host(), gdtop.host(), gdw.host()};
  for (int k = 0; k < 3; ++k) {
    INFO("output " << k << " (losses, dtop, dw)");
    const double budget = relative_error(rounded[k], exact[k]), error = relative_error(got[k], exact[k]);
    INFO("budget " << budget << " error " << error);
    CHECK(budget > 1e-6);
    CHECK(error <= 4 * budget + 1e-6);  // the logits and their gradients are rounded to bf16 as well
  }
  CHECK(got[0][5] == 0.f);  // an ignored target has no loss
  }
}

TEST_CASE("GPU models match the CPU reference: logits, loss, every gradient, 10 AdamW steps", "[gpu][model]") {
  if (!have_gpu()) return;
  for (Precision precision : {Precision::Fp32, Precision::Tf32, Precision::Bf16}) {
    auto gpu = make_backend(Device::Cuda, precision);
    // exact fp32; TF32 tensor cores (10-bit mantissa); bf16 operands (7-bit mantissa, checked per GEMM
    // by the ratio rule above, here end to end through two layers, the head and the loss)
    const double tol = precision == Precision::Fp32 ? 1e-4 : precision == Precision::Tf32 ? 1e-2 : 4e-2;
    for (const std::string& descriptor : kModels) {
      INFO(descriptor << " " << precision_name(precision));
      ModelConfig config = ModelConfig::parse(descriptor);
      const int B = 3, N = B * config.n_ctx;
      CpuOps<double> cpu;
      Model<double> reference(config, cpu, B);
      Model<float> model(config, *gpu, B);
      reference.init_params(3);
      std::vector<double> p = reference.save_params();
      model.load_params(to_float(p));
      auto tokens = test::random_tokens(N, config.vocab, 8), targets = test::random_tokens(N, config.vocab, 9);
      targets[3] = -1;
      const double ref_loss = reference.forward(tokens.data(), targets.data(), B, false);
      std::vector<double> ref_logits(reference.logits(), reference.logits() + static_cast<size_t>(N) * config.vocab);
      const double loss = model.forward(tokens.data(), targets.data(), B, false);
      std::vector<float> logits(static_cast<size_t>(N) * config.vocab);
      gpu->to_host(logits.data(), model.logits(), logits.size() * sizeof(float));
      CHECK(std::fabs(loss - ref_loss) / ref_loss < tol);
      CHECK(relative_error(logits, ref_logits) < tol);

      reference.zero_grad();
      reference.forward(tokens.data(), targets.data(), B, true);
      reference.backward();
      model.zero_grad();
      model.forward(tokens.data(), targets.data(), B, true);
      model.backward();
      std::vector<float> grads(model.num_params());
      gpu->to_host(grads.data(), model.grad_data(), grads.size() * sizeof(float));
      for (const ParamInfo& info : model.params().entries()) {
        std::vector<float> g(grads.begin() + info.offset, grads.begin() + info.offset + info.numel);
        std::vector<double> r(reference.grad_data() + info.offset, reference.grad_data() + info.offset + info.numel);
        INFO(info.name);
        CHECK(relative_error(g, r) < tol * 3);
      }

      // 10 AdamW steps on both backends from the same start
      const size_t n = model.num_params();
      std::vector<double> m(n, 0.0), v(n, 0.0);
      DeviceArray<float, float> gm(*gpu, n), gv(*gpu, n);
      for (int step = 1; step <= 10; ++step) {
        reference.zero_grad();
        reference.forward(tokens.data(), targets.data(), B, true);
        reference.backward();
        cpu.adamw(reference.param_data(), reference.grad_data(), m.data(), v.data(), n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, step, 1.0f);
        model.zero_grad();
        model.forward(tokens.data(), targets.data(), B, true);
        model.backward();
        gpu->adamw(model.param_data(), model.grad_data(), gm.get(), gv.get(), n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, step, 1.0f);
      }
      std::vector<double> ref_params = reference.save_params();
      std::vector<float> params = model.save_params();
      CHECK(relative_error(params, ref_params) < tol);
    }
  }
}

TEST_CASE("GPU causality and run-to-run determinism", "[gpu][causality]") {
  if (!have_gpu()) return;
  for (Precision precision : {Precision::Tf32, Precision::Bf16})
  for (const std::string& descriptor : kModels) {
    auto gpu = make_backend(Device::Cuda, precision);
    INFO(descriptor << " " << precision_name(precision));
    ModelConfig config = ModelConfig::parse(descriptor);
    const int T = config.n_ctx, V = config.vocab;
    Model<float> model(config, *gpu, 1);
    model.init_params(4);
    auto tokens = test::random_tokens(T, V, 10);
    std::vector<float> before(static_cast<size_t>(T) * V), after(before.size());
    model.forward(tokens.data(), nullptr, 1);
    gpu->to_host(before.data(), model.logits(), before.size() * sizeof(float));
    const int t = T / 2;
    auto changed = tokens;
    for (int k = t + 1; k < T; ++k) changed[k] = (changed[k] + 3) % V;
    model.forward(changed.data(), nullptr, 1);
    gpu->to_host(after.data(), model.logits(), after.size() * sizeof(float));
    for (size_t i = 0; i < static_cast<size_t>(t + 1) * V; ++i) REQUIRE(after[i] == before[i]);
    // gradients are bit-identical run to run (no float atomics)
    auto targets = test::random_tokens(T, V, 11);
    std::vector<float> g1(model.num_params()), g2(model.num_params());
    for (auto* g : {&g1, &g2}) {
      model.zero_grad();
      model.forward(tokens.data(), targets.data(), 1, true);
      model.backward();
      gpu->to_host(g->data(), model.grad_data(), g->size() * sizeof(float));
    }
    CHECK(g1 == g2);
  }
}

TEST_CASE("GPU --recompute gives bit-identical gradients", "[gpu][recompute]") {
  if (!have_gpu()) return;
  auto gpu = make_backend(Device::Cuda, Precision::Bf16);
  for (const char* descriptor : {"mixer:d32:l3:c16:v64", "llama:d32:l3:h2:c16:v64", "hybrid:d32:l3:h2:c16:v64"}) {
  INFO(descriptor);
  ModelConfig config = ModelConfig::parse(descriptor);
  const int B = 2;
  Model<float> stored(config, *gpu, B), rebuilt(config, *gpu, B, /*recompute=*/true);
  stored.init_params(5);
  rebuilt.load_params(stored.save_params());
  auto tokens = test::random_tokens(B * config.n_ctx, config.vocab, 6), targets = test::random_tokens(B * config.n_ctx, config.vocab, 7);
  std::vector<float> g1(stored.num_params()), g2(stored.num_params());
  for (auto [m, g] : {std::pair{&stored, &g1}, std::pair{&rebuilt, &g2}}) {
    m->zero_grad();
    m->forward(tokens.data(), targets.data(), B, true);
    m->backward();
    gpu->to_host(g->data(), m->grad_data(), g->size() * sizeof(float));
  }
  CHECK(g1 == g2);
  }
}

TEST_CASE("GPU train_step is recorded as a CUDA graph and replays bit-identically", "[gpu][graph]") {
  if (!have_gpu()) return;
  auto gpu = make_backend(Device::Cuda, Precision::Bf16);
  for (const char* descriptor : {"mixer:d32:l2:c16:v64", "llama:d32:l2:h2:c16:v64", "gpt:d32:l2:h2:c16:v64"}) {
    INFO(descriptor);
    ModelConfig config = ModelConfig::parse(descriptor);
    const int B = 2;
    const size_t N = static_cast<size_t>(B) * config.n_ctx;
    Model<float> recorded(config, *gpu, B), direct(config, *gpu, B);
    recorded.init_params(8);
    direct.load_params(recorded.save_params());
    const size_t n = recorded.num_params();
    DeviceArray<float, float> m1(*gpu, n), v1(*gpu, n), m2(*gpu, n), v2(*gpu, n);
    for (int step = 1; step <= 4; ++step) {  // step 1 runs directly, step 2 records, steps 2-4 replay
      auto tokens = test::random_tokens(N, config.vocab, 20 + step), targets = test::random_tokens(N, config.vocab, 30 + step);
      for (int i = 0; i < 3 * step; ++i) targets[i] = -1;  // a different target count every step (as padding makes): one recording serves all
      const double loss_recorded = recorded.train_step(tokens.data(), targets.data(), B);
      direct.zero_grad();
      const double loss_direct = direct.forward(tokens.data(), targets.data(), B, true);
      direct.backward();
      CHECK(loss_recorded == loss_direct);
      std::vector<float> g1(n), g2(n);
      gpu->to_host(g1.data(), recorded.grad_data(), n * sizeof(float));
      gpu->to_host(g2.data(), direct.grad_data(), n * sizeof(float));
      CHECK(g1 == g2);
      gpu->adamw(recorded.param_data(), recorded.grad_data(), m1.get(), v1.get(), n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, step, 1.0f);
      gpu->adamw(direct.param_data(), direct.grad_data(), m2.get(), v2.get(), n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, step, 1.0f);
      CHECK(recorded.step_recorded() == (step >= 2));
    }
  }
}

TEST_CASE("GPU bf16 weight shadow always equals the rounded parameters", "[gpu][bf16]") {
  if (!have_gpu()) return;
  for (const char* descriptor : {"mixer:d32:l2:c16:v64", "llama:d32:l2:h2:c16:v64"}) {
    INFO(descriptor);
    auto gpu = make_backend(Device::Cuda, Precision::Bf16);  // a new backend: see the memory check below
    ModelConfig config = ModelConfig::parse(descriptor);
    const int B = 2;
    const size_t N = static_cast<size_t>(B) * config.n_ctx;
    auto tokens = test::random_tokens(N, config.vocab, 61), targets = test::random_tokens(N, config.vocab, 62);
    // `fresh` has no shadow (never stepped), so its GEMMs round the weights on the fly
    auto fresh_loss = [&](const std::vector<float>& params) {
      Model<float> fresh(config, *gpu, B);
      fresh.load_params(params);
      return fresh.forward(tokens.data(), targets.data(), B, false);
    };
    Model<float> stepped(config, *gpu, B);
    stepped.init_params(9);
    const size_t n = stepped.num_params();
    DeviceArray<float, float> m(*gpu, n), v(*gpu, n);
    stepped.zero_grad();
    stepped.forward(tokens.data(), targets.data(), B, true);
    stepped.backward();
    // Nothing has been freed on this backend yet, so its peak is what it holds: AdamW adds the bf16 copy.
    const size_t held = gpu->peak_bytes();
    gpu->adamw(stepped.param_data(), stepped.grad_data(), m.get(), v.get(), n, 1e-2f, 0.9f, 0.999f, 1e-8f, 0.0f, 1, 1.0f);  // writes the shadow
    CHECK(gpu->peak_bytes() == held + n * sizeof(uint16_t));  // the shadow exists, so the checks below exercise it
    CHECK(stepped.forward(tokens.data(), targets.data(), B, false) == fresh_loss(stepped.save_params()));
    // a write that is not AdamW's (loading a checkpoint) reaches the shadow too
    Model<float> other(config, *gpu, B);
    other.init_params(10);
    const std::vector<float> loaded = other.save_params();
    stepped.load_params(loaded);
    CHECK(stepped.forward(tokens.data(), targets.data(), B, false) == fresh_loss(loaded));
  }
}

TEST_CASE("GPU resume is bit-identical to an uninterrupted run", "[gpu][resume]") {
  if (!have_gpu()) return;
  test::TempDir tmp;
  const std::string data = tmp.file("ts");
  REQUIRE(data == test::prepare_small(tmp));
  for (const char* model : {"mixer:d64:l2:c64", "llama:d64:l2:h2:c64"}) {
    const std::string common = fmt::format("train --device cuda --model {} --data {} --batch 8 --steps 12 --warmup 3 --lr 2e-3 --eval-every 6", model, data);
    REQUIRE(test::run_maskmix(common + " --out " + tmp.file("full")) == 0);
    REQUIRE(test::run_maskmix(common + " --out " + tmp.file("split") + " --stop-after 5") == 0);
    REQUIRE(test::run_maskmix("train --resume " + tmp.file("split")) == 0);
    INFO(model);
    CHECK(load_weights(tmp.file("full/model.safetensors")).params == load_weights(tmp.file("split/model.safetensors")).params);
    std::filesystem::remove_all(tmp.file("full"));
    std::filesystem::remove_all(tmp.file("split"));
  }
}

TEST_CASE("GPU inversion objective and input gradient match the CPU reference", "[gpu][invert]") {
  if (!have_gpu()) return;
  auto gpu = make_backend(Device::Cuda, Precision::Fp32);
  CpuOps<double> cpu;
  for (const char* descriptor : {"mixer:d32:l2:c16:v64", "llama:d32:l2:h2:c16:v64", "gpt:d32:l2:h2:c16:v64"}) {
    for (int kind : {0, 1, 2}) {
      INFO(descriptor << " loss kind " << kind);
      ModelConfig config = ModelConfig::parse(descriptor);
      const int B = 2, N = B * config.n_ctx, D = config.d_model;
      const size_t ND = static_cast<size_t>(N) * D;
      Model<double> reference(config, cpu, B);
      Model<float> model(config, *gpu, B);
      reference.init_params(12);
      model.load_params(to_float(reference.save_params()));
      auto a = test::random_vector(ND, 13), target = test::random_vector(ND, 14);
      std::vector<double> w(N, 1.0), losses(N), dout(ND), grad(ND);
      w[0] = 0.0;
      const double* out = reference.forward_embeddings(a.data(), B, config.n_layers);
      cpu.distance_loss(losses.data(), dout.data(), out, target.data(), w.data(), N, D, kind);
      reference.backward_embeddings(dout.data(), grad.data(), B, config.n_layers);
      Dev ga(*gpu, to_float(a)), gt(*gpu, to_float(target)), gw(*gpu, to_float(w)), gl(*gpu, N), gd(*gpu, ND), gg(*gpu, ND);
      const float* gout = model.forward_embeddings(ga.p(), B, config.n_layers);
      gpu->distance_loss(gl.p(), gd.p(), gout, gt.p(), gw.p(), N, D, kind);
      CHECK(relative_error(gl.host(), losses) < 1e-4);
      if (kind == 0) continue;  // sign() flips where |out - target| ~ rounding; its gradient is compared via L2/cosine
      model.backward_embeddings(gd.p(), gg.p(), B, config.n_layers);
      CHECK(relative_error(gg.host(), grad) < 1e-4);
    }
  }
}
