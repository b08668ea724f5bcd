// Pointwise kernels: residual adds, axpy, exact GELU (vectorized), SwiGLU.
#include "elementwise.cuh"

#include "activations.cuh"

#include <cstdint>
#include <initializer_list>

namespace mm::cuda {

namespace {
constexpr int kThreads = 256;

// Pointwise kernels: each functor's elem(i) computes element i from its arrays. The body runs four
// elements per thread through float4 loads/stores when every array is 16-byte aligned (the memory-bound
// case), the tail (and unaligned calls) one element at a time. Results are identical either way.
template <class Op>
__global__ void pointwise_kernel(Op op, size_t n, bool vectorized) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x, tid = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  const size_t quads = vectorized ? n / 4 : 0;
  for (size_t q = tid; q < quads; q += stride) op.quad(q);
  for (size_t i = 4 * quads + tid; i < n; i += stride) op.elem(i);
}

__device__ __forceinline__ float4 load4(const float* p, size_t q) { return reinterpret_cast<const float4*>(p)[q]; }
__device__ __forceinline__ void store4(float* p, size_t q, float4 v) { reinterpret_cast<float4*>(p)[q] = v; }
template <class F>
__device__ __forceinline__ float4 map4(float4 a, float4 b, F f) { return make_float4(f(a.x, b.x), f(a.y, b.y), f(a.z, b.z), f(a.w, b.w)); }

struct AddInplace {  // dst += src
  float* dst; const float* src;
  __device__ void elem(size_t i) const { dst[i] += src[i]; }
  __device__ void quad(size_t q) const { store4(dst, q, map4(load4(dst, q), load4(src, q), [](float a, float b) { return a + b; })); }
};
struct Add {  // out = a + b
  float* out; const float* a; const float* b;
  __device__ void elem(size_t i) const { out[i] = a[i] + b[i]; }
  __device__ void quad(size_t q) const { store4(out, q, map4(load4(a, q), load4(b, q), [](float x, float y) { return x + y; })); }
};
struct Axpy {  // y += alpha * x
  float* y; const float* x; float alpha;
  __device__ void elem(size_t i) const { y[i] += alpha * x[i]; }
  __device__ void quad(size_t q) const {
    const float al = alpha;
    store4(y, q, map4(load4(y, q), load4(x, q), [al](float yv, float xv) { return yv + al * xv; }));
  }
};
struct GeluForward {  // out = x * Phi(x)
  float* out; const float* inp;
  __device__ void elem(size_t i) const { out[i] = gelu(inp[i]); }
  __device__ void quad(size_t q) const {
    const float4 x = load4(inp, q);
    store4(out, q, make_float4(gelu(x.x), gelu(x.y), gelu(x.z), gelu(x.w)));
  }
};
struct GeluBackward {  // dinp = dout * GELU'(x)
  float* dinp; const float* dout; const float* inp;
  __device__ void elem(size_t i) const { dinp[i] = gelu_grad(dout[i], inp[i]); }
  __device__ void quad(size_t q) const { store4(dinp, q, map4(load4(dout, q), load4(inp, q), [](float go, float x) { return gelu_grad(go, x); })); }
};

bool aligned(std::initializer_list<const void*> ptrs) {
  for (const void* p : ptrs)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  return true;
}

template <class Op>
void launch_pointwise(Context& ctx, const Op& op, size_t n, std::initializer_list<const void*> ptrs) {
  const bool vectorized = aligned(ptrs);
  const size_t work = vectorized ? n / 4 + n % 4 : n;
  const int blocks = static_cast<int>(std::min<size_t>(blocks_for(std::max<size_t>(work, 1), kThreads), static_cast<size_t>(ctx.sm_count()) * 16));
  pointwise_kernel<<<blocks, kThreads, 0, ctx.stream()>>>(op, n, vectorized);
  MM_LAUNCH_CHECK();
}

__global__ void swiglu_forward_kernel(float* out, const float* inp, int N, int H) {
  const size_t total = static_cast<size_t>(N) * H;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < total; i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t n = i / H, h = i % H;
    out[i] = swiglu(inp[n * 2 * H + h], inp[n * 2 * H + H + h]);
  }
}
__global__ void swiglu_backward_kernel(float* dinp, const float* dout, const float* inp, int N, int H) {
  const size_t total = static_cast<size_t>(N) * H;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < total; i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t n = i / H, h = i % H;
    float dg, du;
    swiglu_grad(dout[i], inp[n * 2 * H + h], inp[n * 2 * H + H + h], dg, du);
    dinp[n * 2 * H + h] = dg;
    dinp[n * 2 * H + H + h] = du;
  }
}

int grid(Context& ctx, size_t n) { return static_cast<int>(std::min<size_t>(blocks_for(n, kThreads), static_cast<size_t>(ctx.sm_count()) * 16)); }
}  // namespace

void add_inplace(Context& ctx, float* dst, const float* src, size_t n) { launch_pointwise(ctx, AddInplace{dst, src}, n, {dst, src}); }
void add(Context& ctx, float* out, const float* a, const float* b, size_t n) { launch_pointwise(ctx, Add{out, a, b}, n, {out, a, b}); }
void axpy(Context& ctx, float* y, const float* x, float alpha, size_t n) { launch_pointwise(ctx, Axpy{y, x, alpha}, n, {y, x}); }
void gelu_forward(Context& ctx, float* out, const float* inp, size_t n) { launch_pointwise(ctx, GeluForward{out, inp}, n, {out, inp}); }
void gelu_backward(Context& ctx, float* dinp, const float* dout, const float* inp, size_t n) {
  launch_pointwise(ctx, GeluBackward{dinp, dout, inp}, n, {dinp, dout, inp});
}
void swiglu_forward(Context& ctx, float* out, const float* inp, int N, int H) {
  swiglu_forward_kernel<<<grid(ctx, static_cast<size_t>(N) * H), kThreads, 0, ctx.stream()>>>(out, inp, N, H);
  MM_LAUNCH_CHECK();
}
void swiglu_backward(Context& ctx, float* dinp, const float* dout, const float* inp, int N, int H) {
  swiglu_backward_kernel<<<grid(ctx, static_cast<size_t>(N) * H), kThreads, 0, ctx.stream()>>>(dinp, dout, inp, N, H);
  MM_LAUNCH_CHECK();
}

}  // namespace mm::cuda
