// Finite-difference gradient checks of every CPU op in double precision, plus op-level properties.
#include "helpers.h"
#include "ops/cpu_ops.h"

using namespace mm;
using test::check_gradient;
using test::random_vector;

namespace {

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

CpuOps<double> ops;

}  // namespace

TEST_CASE("layernorm gradients", "[ops][grad]") {
  const int N = 5, D = 7;
  auto x = random_vector(N * D, 1), w = random_vector(D, 2), b = random_vector(D, 3), r = random_vector(N * D, 4);
  std::vector<double> out(N * D), mean(N), rstd(N), dx(N * D), dw(D, 0.0), db(D, 0.0);
  auto loss = [&] { ops.layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, D); return dot(out, r); };
  loss();
  ops.layernorm_backward(dx.data(), dw.data(), db.data(), r.data(), nullptr, x.data(), w.data(), mean.data(), rstd.data(), N, D);
  check_gradient("layernorm dx", x, dx, loss);
  check_gradient("layernorm dw", w, dw, loss);
  check_gradient("layernorm db", b, db, loss);
}

TEST_CASE("rmsnorm gradients", "[ops][grad]") {
  const int N = 4, D = 6;
  auto x = random_vector(N * D, 5), w = random_vector(D, 6), r = random_vector(N * D, 7);
  std::vector<double> out(N * D), rstd(N), dx(N * D), dw(D, 0.0);
  auto loss = [&] { ops.rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, D); return dot(out, r); };
  loss();
  ops.rmsnorm_backward(dx.data(), dw.data(), r.data(), nullptr, x.data(), w.data(), rstd.data(), N, D);
  check_gradient("rmsnorm dx", x, dx, loss);
  check_gradient("rmsnorm dw", w, dw, loss);
}

TEST_CASE("linear gradients", "[ops][grad]") {
  const int N = 6, IC = 5, OC = 4;
  auto x = random_vector(N * IC, 8), w = random_vector(OC * IC, 9), b = random_vector(OC, 10), r = random_vector(N * OC, 11);
  std::vector<double> out(N * OC), dx(N * IC), dw(OC * IC, 0.0), db(OC, 0.0);
  auto loss = [&] { ops.linear_forward(out.data(), x.data(), w.data(), b.data(), N, IC, OC); return dot(out, r); };
  ops.linear_backward(dx.data(), dw.data(), db.data(), r.data(), x.data(), w.data(), N, IC, OC);
  check_gradient("linear dx", x, dx, loss);
  check_gradient("linear dw", w, dw, loss);
  check_gradient("linear db", b, db, loss);
}

TEST_CASE("gelu and swiglu gradients", "[ops][grad]") {
  const int N = 3, H = 5;
  auto x = random_vector(N * 2 * H, 12, 2.0), r = random_vector(N * 2 * H, 13);
  std::vector<double> out(N * 2 * H), dx(N * 2 * H);
  auto gelu_loss = [&] { ops.gelu_forward(out.data(), x.data(), x.size()); return dot(out, r); };
  ops.gelu_backward(dx.data(), r.data(), x.data(), x.size());
  check_gradient("gelu", x, dx, gelu_loss);
  // exact erf GELU, not the tanh approximation: GELU(1) = 0.8413447460685429
  std::vector<double> one{1.0}, g1(1);
  ops.gelu_forward(g1.data(), one.data(), 1);
  CHECK(g1[0] == Approx(0.8413447460685429).epsilon(1e-14));

  std::vector<double> sw(N * H), rs(random_vector(N * H, 14));
  auto swiglu_loss = [&] { ops.swiglu_forward(sw.data(), x.data(), N, H); return dot(sw, rs); };
  ops.swiglu_backward(dx.data(), rs.data(), x.data(), N, H);
  check_gradient("swiglu", x, dx, swiglu_loss);
}

TEST_CASE("masked (and bidirectional) mix gradients, flat and grouped, square and rectangular", "[ops][grad][mask]") {
  struct Shape { int B, Ti, To, D, G; };
  for (Shape s : {Shape{2, 5, 5, 4, 1}, Shape{2, 4, 4, 6, 2}, Shape{2, 3, 6, 2, 1}, Shape{1, 6, 3, 3, 1}})
  for (bool causal : {true, false}) {
    auto x = random_vector(s.B * s.Ti * s.D, 20), w = random_vector(s.G * s.To * s.Ti, 21), c = random_vector(s.G * s.To, 22);
    auto r = random_vector(s.B * s.To * s.D, 23);
    std::vector<double> out(s.B * s.To * s.D), dx(x.size()), dw(w.size(), 0.0), dc(c.size(), 0.0);
    auto loss = [&] { ops.mix_forward(out.data(), x.data(), w.data(), c.data(), s.B, s.Ti, s.To, s.D, s.G, causal); return dot(out, r); };
    ops.mix_backward(dx.data(), dw.data(), dc.data(), r.data(), x.data(), w.data(), s.B, s.Ti, s.To, s.D, s.G, causal);
    // The upper triangle is masked inside the op: its numeric gradient is 0, and dw is exactly 0 there.
    check_gradient("mix dx", x, dx, loss);
    check_gradient("mix dw", w, dw, loss, 1000);
    check_gradient("mix dc", c, dc, loss);
    for (int g = 0; g < s.G && causal; ++g)
      for (int i = 0; i < s.To; ++i)
        for (int j = i + 1; j < s.Ti; ++j) REQUIRE(dw[(static_cast<size_t>(g) * s.To + i) * s.Ti + j] == 0.0);
  }
}

TEST_CASE("masked mix ignores whatever is stored above the diagonal", "[ops][mask]") {
  const int B = 1, T = 4, D = 3;
  auto x = random_vector(B * T * D, 30), w = random_vector(T * T, 31), c = random_vector(T, 32);
  std::vector<double> a(B * T * D), b(B * T * D);
  ops.mix_forward(a.data(), x.data(), w.data(), c.data(), B, T, T, D, 1, true);
  for (int i = 0; i < T; ++i)
    for (int j = i + 1; j < T; ++j) w[i * T + j] = 1e6;
  ops.mix_forward(b.data(), x.data(), w.data(), c.data(), B, T, T, D, 1, true);
  CHECK(a == b);
}

TEST_CASE("rope is a rotation and its backward is the inverse", "[ops][grad]") {
  const int B = 2, T = 5, D = 8, H = 2;
  auto x = random_vector(B * T * 3 * D, 40), r = random_vector(x.size(), 41);
  std::vector<double> y;
  auto loss = [&] { y = x; ops.rope_forward(y.data(), B, T, D, H); return dot(y, r); };
  std::vector<double> g = r;
  ops.rope_backward(g.data(), B, T, D, H);
  check_gradient("rope", x, g, loss);
  // position 0 is unrotated; v is untouched
  loss();
  for (int d = 0; d < 3 * D; ++d) CHECK(y[d] == x[d]);
  for (int d = 2 * D; d < 3 * D; ++d) CHECK(y[3 * D + d] == x[3 * D + d]);
}

TEST_CASE("causal attention gradients", "[ops][grad]") {
  const int B = 2, T = 5, D = 8, H = 2;
  for (bool rope : {false, true}) {
  INFO("rope " << rope);
  auto qkv = random_vector(B * T * 3 * D, 50), r = random_vector(B * T * D, 51);
  std::vector<double> out(B * T * D), probs(B * H * T * T), dqkv(qkv.size());
  auto loss = [&] { ops.attention_forward(out.data(), probs.data(), qkv.data(), B, T, D, H, rope); return dot(out, r); };
  loss();
  ops.attention_backward(dqkv.data(), r.data(), qkv.data(), out.data(), probs.data(), B, T, D, H, rope);
  check_gradient("attention dqkv", qkv, dqkv, loss, 200);
  for (int i = 0; i < T; ++i) {
    double row = 0;
    for (int j = 0; j < T; ++j) row += probs[i * T + j];
    CHECK(row == Approx(1.0));
    for (int j = i + 1; j < T; ++j) CHECK(probs[i * T + j] == 0.0);
  }
  }
}

TEST_CASE("embedding gradients, with and without positions", "[ops][grad]") {
  const int N = 6, T = 3, D = 4, V = 5;
  std::vector<int32_t> tokens{1, 4, 1, 0, 2, 1};
  auto wte = random_vector(V * D, 60), wpe = random_vector(T * D, 61), r = random_vector(N * D, 62);
  std::vector<double> out(N * D), dwte(V * D, 0.0), dwpe(T * D, 0.0);
  auto loss = [&] { ops.embedding_forward(out.data(), tokens.data(), wte.data(), wpe.data(), N, T, D); return dot(out, r); };
  ops.embedding_backward(dwte.data(), dwpe.data(), r.data(), tokens.data(), N, T, D, V);
  check_gradient("embedding dwte", wte, dwte, loss);
  check_gradient("embedding dwpe", wpe, dwpe, loss);
}

TEST_CASE("cross-entropy gradients and ignored targets", "[ops][grad]") {
  const int N = 4, V = 7;
  auto logits = random_vector(N * V, 70, 3.0);
  std::vector<int32_t> targets{3, -1, 0, 6};
  std::vector<double> losses(N), dlogits(N * V);
  const double one = 1.0;  // the gradient's scale, read through a pointer (backend memory)
  auto loss = [&] {
    ops.cross_entropy(losses.data(), nullptr, logits.data(), targets.data(), N, V, nullptr);
    return losses[0] + losses[1] + losses[2] + losses[3];
  };
  ops.cross_entropy(losses.data(), dlogits.data(), logits.data(), targets.data(), N, V, &one);
  CHECK(losses[1] == 0.0);
  for (int v = 0; v < V; ++v) CHECK(dlogits[V + v] == 0.0);
  check_gradient("cross-entropy", logits, dlogits, loss);
  // uniform logits give ln V
  std::vector<double> flat(V, 0.5), l1(1), d1(V);
  std::vector<int32_t> t1{2};
  ops.cross_entropy(l1.data(), d1.data(), flat.data(), t1.data(), 1, V, &one);
  CHECK(l1[0] == Approx(std::log(V)));
}

TEST_CASE("adamw matches the closed form of torch.optim.AdamW on its first step", "[ops]") {
  std::vector<double> p{1.0, -2.0, 0.0}, g{0.5, -0.25, 0.0}, m(3, 0.0), v(3, 0.0);
  ops.adamw(p.data(), g.data(), m.data(), v.data(), 3, 0.1f, 0.9f, 0.999f, 1e-8f, 0.01f, 1, 1.0f);
  // step 1: m_hat = g, v_hat = g^2, update = lr * (wd * p + g / (|g| + eps))
  CHECK(p[0] == Approx(1.0 - 0.1 * (0.01 * 1.0 + 1.0)).epsilon(1e-6));
  CHECK(p[1] == Approx(-2.0 - 0.1 * (0.01 * -2.0 - 1.0)).epsilon(1e-6));
  CHECK(p[2] == 0.0);  // zero gradient, zero weight: stays exactly zero (the masked triangle relies on this)
  CHECK(ops.sum_squares(g.data(), 3) == Approx(0.3125));
}
