// Hopper GEMMs with exact GELU in the epilogue (see gemm_gelu.cuh): TMA + mbarrier ring, wgmma.
#include "gemm_gelu.cuh"

#include <cuda.h>
#include <cudaTypedefs.h>

#include "activations.cuh"
#include "reduce.cuh"

namespace mm::cuda {

namespace {
using bf16 = __nv_bfloat16;

constexpr int kBM = 128, kBN = 128, kBK = 64, kStages = 3;
constexpr int kThreads = 160;                            // warpgroup 0 multiplies, warp 4 loads
constexpr int kTileABytes = kBM * kBK * 2;               // A slice [128 rows, 64 k] bf16, 128-byte rows
constexpr int kTileBBytes = kBN * kBK * 2;               // B slice [128 rows, 64 k]
constexpr int kStageBytes = kTileABytes + kTileBBytes;   // 32 KB
constexpr int kSumFloats = 4 * kBN;                      // backward: column sums of the 4 consumer warps
// + alignment slack, + barriers: about 100 KB, so two CTAs share an SM and one's epilogue (GELU on the
// CUDA cores) runs while the other's wgmma keep the tensor cores busy
constexpr int kSmemBytes = 1024 + kStages * kStageBytes + kSumFloats * 4 + (2 * kStages + 1) * 8;
// After the multiplies the ring holds the epilogue's [128, 128] bf16 tiles, 32 KB regions each stored as
// two [128 rows, 64 columns] halves in the 128-byte swizzle (what TMA reads and writes): coalesced bulk
// copies to and from global memory, and conflict-free shared-memory accesses in fragment order.
constexpr int kRegionBytes = kBM * kBN * 2, kHalfBytes = kRegionBytes / 2;
static_assert(3 * kRegionBytes <= kStages * kStageBytes, "the epilogue's three tiles must fit in the ring");

// The [M, N] bf16 arrays the epilogue writes (and, backward, reads), as tensor maps of [128, 64] boxes.
struct EpilogueMaps {
  CUtensorMap out;  // forward: pre; backward: dpre
  CUtensorMap act;
  CUtensorMap pre;  // backward: read
};
struct EpilogueArgs {
  float* partial;     // backward: [M/128, N] column sums of dpre per 128-row tile, or null
  const float* bias;  // [N] or null
  int N;
  bool write_act;     // forward: false writes pre only
};

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define MM_GEMM_GELU_DEVICE 1
__device__ __forceinline__ uint32_t smem_address(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }

__device__ __forceinline__ void barrier_init(uint32_t bar, uint32_t arrivals) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(arrivals));
}
__device__ __forceinline__ void barrier_expect_bytes(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void barrier_arrive(uint32_t bar) { asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory"); }
// Waits until the phase with this parity has completed (a fresh barrier counts its phase "1" as done).
__device__ __forceinline__ void barrier_wait(uint32_t bar, uint32_t parity) {
  uint32_t done = 0;
  while (!done)
    asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                 : "=r"(done)
                 : "r"(bar), "r"(parity)
                 : "memory");
}
// 2-D tile of `map` at (inner, outer) into shared memory; completes `bar`'s expected bytes.
__device__ __forceinline__ void tma_load(uint32_t dst, const CUtensorMap* map, int inner, int outer, uint32_t bar) {
  asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];" ::"r"(dst),
               "l"(reinterpret_cast<uint64_t>(map)), "r"(inner), "r"(outer), "r"(bar)
               : "memory");
}
// Shared-memory tile to the 2-D box of `map` at (inner, outer), in the thread's bulk group.
__device__ __forceinline__ void tma_store(const CUtensorMap* map, uint32_t src, int inner, int outer) {
  asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%2, %3}], [%1];" ::"l"(reinterpret_cast<uint64_t>(map)), "r"(src),
               "r"(inner), "r"(outer)
               : "memory");
}
// wgmma descriptor of a K-major tile of 128-byte rows in the 128-byte swizzle TMA wrote (8-row atoms
// of 1024 bytes: stride 1024; the leading offset is unused for this layout).
__device__ __forceinline__ uint64_t tile_descriptor(uint32_t address) {
  return static_cast<uint64_t>((address & 0x3FFFF) >> 4) | (static_cast<uint64_t>(1) << 16) | (static_cast<uint64_t>(1024 >> 4) << 32) |
         (static_cast<uint64_t>(1) << 62);
}
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int Pending>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(Pending) : "memory");
}
// d[64 x 128 fragment] (+)= A[64 x 16] B[128 x 16]^T, both from shared memory.
__device__ __forceinline__ void wgmma_m64n128k16(float (&d)[64], uint64_t desc_a, uint64_t desc_b, uint32_t accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
      "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(desc_a), "l"(desc_b), "r"(accumulate));
}

#endif

// One CTA per 128 x 128 tile of C (blockIdx.x over N, so neighbours share A's rows in L2), two CTAs per
// SM (at most 200 registers a thread: 2 x 5 warps x 6400 of the SM's 65536). The consumer warpgroup multiplies rows 0-63 and 64-127 of the tile into d[0] and d[1]; fragment
// of thread t (warp w = t/32, lane l): d[i][4j + 2h + e] is C at row 64i + 16w + l/4 + 8h, column
// 8j + 2(l%4) + e of the tile (j < 16, h, e < 2).
template <bool Backward>
__global__ void __maxnreg__(200) gemm_gelu_kernel(const __grid_constant__ CUtensorMap map_a, const __grid_constant__ CUtensorMap map_b,
                                                                const __grid_constant__ EpilogueMaps maps, EpilogueArgs args, int K) {
#ifdef MM_GEMM_GELU_DEVICE
  extern __shared__ unsigned char smem_raw[];
  const uint32_t raw = smem_address(smem_raw), tiles = (raw + 1023u) & ~1023u;  // the swizzle wants 1024-byte alignment
  float* sums = reinterpret_cast<float*>(smem_raw + (tiles - raw) + kStages * kStageBytes);
  const uint32_t bars = tiles + kStages * kStageBytes + kSumFloats * 4;
  auto full = [&](int s) { return bars + 8u * s; };               // stage s loaded (TMA bytes arrived)
  auto empty = [&](int s) { return bars + 8u * (kStages + s); };  // stage s consumed
  const uint32_t pre_loaded = bars + 8u * (2 * kStages);           // backward: the pre tile arrived
  const int m0 = blockIdx.y * kBM, n0 = blockIdx.x * kBN, k_blocks = K / kBK;
  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; ++s) {
      barrier_init(full(s), 1);
      barrier_init(empty(s), 1);
    }
    barrier_init(pre_loaded, 1);
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();

  if (threadIdx.x >= 128) {  // the loader warp: one thread issues every TMA copy
    if (threadIdx.x == 128)
      for (int kb = 0; kb < k_blocks; ++kb) {
        const int s = kb % kStages;
        barrier_wait(empty(s), ((kb / kStages) & 1) ^ 1);
        barrier_expect_bytes(full(s), kStageBytes);
        tma_load(tiles + s * kStageBytes, &map_a, kb * kBK, m0, full(s));
        tma_load(tiles + s * kStageBytes + kTileABytes, &map_b, kb * kBK, n0, full(s));
      }
    return;
  }
  const int t = threadIdx.x;
  float d[2][64];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int r = 0; r < 64; ++r) d[i][r] = 0.f;
  for (int kb = 0; kb < k_blocks; ++kb) {
    const int s = kb % kStages;
    barrier_wait(full(s), (kb / kStages) & 1);
    const uint32_t a = tiles + s * kStageBytes, b = a + kTileABytes;
    wgmma_fence();
#pragma unroll
    for (int k = 0; k < kBK / 16; ++k)
#pragma unroll
      for (int i = 0; i < 2; ++i) wgmma_m64n128k16(d[i], tile_descriptor(a + i * 64 * 128 + 32 * k), tile_descriptor(b + 32 * k), (kb > 0 || k > 0) ? 1u : 0u);
    wgmma_commit();
    wgmma_wait<1>();  // the previous slice's multiplies are done: give its stage back
    if (kb > 0 && t == 0) barrier_arrive(empty((kb - 1) % kStages));
  }
  wgmma_wait<0>();

  // the ring is free now: regions 0-2 of 32 KB for the epilogue's tiles
  unsigned char* region = smem_raw + (tiles - raw);
  if (Backward) {  // pre's tile into region 0
    if (t == 0) {
      barrier_expect_bytes(pre_loaded, kRegionBytes);
      tma_load(tiles, &maps.pre, n0, m0, pre_loaded);
      tma_load(tiles + kHalfBytes, &maps.pre, n0 + 64, m0, pre_loaded);
    }
    barrier_wait(pre_loaded, 0);
  }
  unsigned char* out_tile = region + (Backward ? 1 : 0) * kRegionBytes;
  unsigned char* act_tile = region + (Backward ? 2 : 1) * kRegionBytes;
  const int warp = t / 32, lane = t % 32;
  const int col0 = 2 * (lane % 4);  // of the tile
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      const int col = col0 + 8 * j;
      const float2 b = args.bias ? *reinterpret_cast<const float2*>(args.bias + n0 + col) : make_float2(0.f, 0.f);
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int row = 64 * i + 16 * warp + lane / 4 + 8 * h;
        // byte offset of (row, col) in a swizzled region: the row's 16-byte chunk (col % 64) / 8 sits at chunk ^ (row % 8)
        const int at = (j / 8) * kHalfBytes + row * 128 + (((j % 8) ^ (row % 8)) << 4) + 4 * (lane % 4);
        float& v0 = d[i][4 * j + 2 * h];
        float& v1 = d[i][4 * j + 2 * h + 1];
        // the GEMM's result rounded once to bf16, as the unfused path stores it
        const float2 c = __bfloat1622float2(__floats2bfloat162_rn(v0, v1));
        if constexpr (!Backward) {
          *reinterpret_cast<__nv_bfloat162*>(out_tile + at) = __floats2bfloat162_rn(c.x, c.y);
          if (args.write_act) *reinterpret_cast<__nv_bfloat162*>(act_tile + at) = __floats2bfloat162_rn(gelu(c.x + b.x), gelu(c.y + b.y));
        } else {
          const float2 x = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(region + at));
          const float x0 = x.x + b.x, x1 = x.y + b.y;
          const __nv_bfloat162 g = __floats2bfloat162_rn(gelu_grad(c.x, x0), gelu_grad(c.y, x1));
          *reinterpret_cast<__nv_bfloat162*>(out_tile + at) = g;
          *reinterpret_cast<__nv_bfloat162*>(act_tile + at) = __floats2bfloat162_rn(gelu(x0), gelu(x1));
          const float2 gs = __bfloat1622float2(g);  // db1 sums the stored (rounded) dpre
          v0 = gs.x;
          v1 = gs.y;
        }
      }
    }
  if (Backward && args.partial) {
    // column sums over the tile's 128 rows: each thread's four rows, the warp's 8 row groups (lanes
    // l/4), then the 4 warps in order through shared memory
#pragma unroll
    for (int j = 0; j < 16; ++j)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        float v = (d[0][4 * j + e] + d[0][4 * j + 2 + e]) + (d[1][4 * j + e] + d[1][4 * j + 2 + e]);
        v += __shfl_xor_sync(0xffffffffu, v, 4);
        v += __shfl_xor_sync(0xffffffffu, v, 8);
        v += __shfl_xor_sync(0xffffffffu, v, 16);
        if (lane < 4) sums[warp * kBN + 8 * j + 2 * lane + e] = v;
      }
  }
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");  // the tiles' writes, visible to TMA
  asm volatile("bar.sync 1, 128;" ::: "memory");                // the consumer warpgroup only
  if (t == 0) {
    const uint32_t out_src = tiles + (Backward ? 1 : 0) * kRegionBytes, act_src = tiles + (Backward ? 2 : 1) * kRegionBytes;
    for (int half = 0; half < 2; ++half) {
      tma_store(&maps.out, out_src + half * kHalfBytes, n0 + 64 * half, m0);
      if (Backward || args.write_act) tma_store(&maps.act, act_src + half * kHalfBytes, n0 + 64 * half, m0);
    }
    asm volatile("cp.async.bulk.commit_group;" ::: "memory");
  }
  if (Backward && args.partial) {
    float total = 0.f;
#pragma unroll
    for (int w = 0; w < 4; ++w) total += sums[w * kBN + t];
    args.partial[static_cast<size_t>(blockIdx.y) * args.N + n0 + t] = total;
  }
  if (t == 0) asm volatile("cp.async.bulk.wait_group.read 0;" ::: "memory");  // shared memory must outlive the copies' reads
#endif
}

// out[c, r] = in[r, c] for a [rows, cols] bf16 matrix, through 32 x 32 shared-memory tiles.
__global__ void transpose_bf16_kernel(bf16* out, const bf16* in, int rows, int cols) {
  __shared__ bf16 tile[32][33];
  const int c = blockIdx.x * 32 + threadIdx.x;
  for (int i = threadIdx.y; i < 32; i += blockDim.y) {
    const int r = blockIdx.y * 32 + i;
    if (r < rows && c < cols) tile[i][threadIdx.x] = in[static_cast<size_t>(r) * cols + c];
  }
  __syncthreads();
  const int r = blockIdx.y * 32 + threadIdx.x;
  for (int i = threadIdx.y; i < 32; i += blockDim.y) {
    const int cc = blockIdx.x * 32 + i;
    if (r < rows && cc < cols) out[static_cast<size_t>(cc) * rows + r] = tile[threadIdx.x][i];
  }
}

// Tensor map of a row-major [rows, cols] bf16 matrix read in boxes of [box_rows, 64] (128-byte swizzle).
CUtensorMap tile_map(Context& ctx, const bf16* matrix, int rows, int cols, int box_rows) {
  auto encode = reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(ctx.driver_entry_point("cuTensorMapEncodeTiled"));
  CUtensorMap map{};
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(cols), static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(cols) * sizeof(bf16)};
  const cuuint32_t box[2] = {static_cast<cuuint32_t>(kBK), static_cast<cuuint32_t>(box_rows)};
  const cuuint32_t element_strides[2] = {1, 1};
  const CUresult status = encode(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, const_cast<bf16*>(matrix), dims, strides, box, element_strides,
                                 CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                                 CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (status != CUDA_SUCCESS)
    throw_error("CUDA driver", static_cast<int>(status), "cuTensorMapEncodeTiled failed (MASKMIX_FUSED_GELU_GEMM=0 avoids it)", __FILE__, __LINE__);
  return map;
}

template <bool Backward>
void launch(Context& ctx, const bf16* a, const bf16* bt, const EpilogueMaps& maps, const EpilogueArgs& args, int M, int N, int K) {
  const CUtensorMap map_a = tile_map(ctx, a, M, K, kBM), map_b = tile_map(ctx, bt, N, K, kBN);
  MM_CUDA_CHECK(cudaFuncSetAttribute(gemm_gelu_kernel<Backward>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes));
  gemm_gelu_kernel<Backward><<<dim3(N / kBN, M / kBM), kThreads, kSmemBytes, ctx.stream()>>>(map_a, map_b, maps, args, K);
  MM_LAUNCH_CHECK();
}
}  // namespace

bool gemm_gelu_supported(const Context& ctx, int M, int N, int K, std::initializer_list<const void*> arrays) {
  if (!ctx.fused_gelu_gemm() || M % kBM != 0 || N % kBN != 0 || K % kBK != 0 || M <= 0 || N <= 0 || K <= 0) return false;
  for (const void* p : arrays)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  return true;
}

void gemm_gelu_forward(Context& ctx, bf16* pre, bf16* act, const bf16* x, const bf16* w, const float* bias, int M, int N, int K) {
  EpilogueMaps maps{};
  maps.out = tile_map(ctx, pre, M, N, kBM);
  if (act) maps.act = tile_map(ctx, act, M, N, kBM);
  launch<false>(ctx, x, w, maps, EpilogueArgs{nullptr, bias, N, act != nullptr}, M, N, K);
}

void gemm_gelu_backward(Context& ctx, bf16* dpre, bf16* act, float* dbias, const bf16* dout, const bf16* w, const bf16* pre, const float* bias, int M,
                        int N, int K) {
  auto* wt = reinterpret_cast<bf16*>(ctx.scratch(kSlotWeightT, (static_cast<size_t>(N) * K + 1) / 2));  // w^T [N, K]: K-major for the GEMM
  transpose_bf16_kernel<<<dim3((N + 31) / 32, (K + 31) / 32), dim3(32, 8), 0, ctx.stream()>>>(wt, w, K, N);
  MM_LAUNCH_CHECK();
  float* partial = dbias ? ctx.scratch(kSlotColumnPartial, static_cast<size_t>(M / kBM) * N) : nullptr;
  const EpilogueMaps maps{tile_map(ctx, dpre, M, N, kBM), tile_map(ctx, act, M, N, kBM), tile_map(ctx, pre, M, N, kBM)};
  launch<true>(ctx, dout, wt, maps, EpilogueArgs{partial, bias, N, true}, M, N, K);
  if (dbias) accumulate_partials(ctx, dbias, partial, M / kBM, N);
}

}  // namespace mm::cuda
