// Hopper GEMMs with exact GELU in the epilogue (see gemm_gelu.cuh): TMA + mbarrier ring, wgmma.
#include "gemm_gelu.cuh"

#include <cuda.h>
#include <cudaTypedefs.h>

#include <algorithm>
#include <type_traits>

#include "activations.cuh"
#include "reduce.cuh"

namespace mm::cuda {

namespace {
using bf16 = __nv_bfloat16;

constexpr int kBM = 128, kBN = 128, kBK = 64, kStages = 3;
constexpr int kThreads = 384;                            // warpgroup 0 loads (one thread), warpgroups 1 and 2 multiply
constexpr int kTileABytes = kBM * kBK * 2;               // A slice [128 rows, 64 k] bf16, 128-byte rows
constexpr int kTileBBytes = kBN * kBK * 2;               // B slice [128 rows, 64 k]
constexpr int kStageBytes = kTileABytes + kTileBBytes;   // 32 KB
// Each consumer warpgroup's epilogue area: two [128, 128] bf16 tiles (forward: pre and act; backward:
// pre read in, then dpre and act of one 64-column half at a time), each stored as two [128 rows, 64
// columns] halves in the 128-byte swizzle that TMA reads and writes: coalesced bulk copies to and from
// global memory, conflict-free shared-memory accesses in fragment order.
constexpr int kTileBytes = kBM * kBN * 2, kHalfBytes = kTileBytes / 2;
constexpr int kEpilogueBytes = 2 * kTileBytes;
constexpr int kBarriers = 2 * kStages + 6;  // ring full/empty; per consumer: pre full/empty, its turn to multiply
constexpr int kSmemBytes = 1024 + kStages * kStageBytes + 2 * kEpilogueBytes + 8 * kBarriers;  // + alignment slack
static_assert(4 * kBN * 4 <= kTileBytes, "the column sums reuse the pre tile's space");

// The [M, N] bf16 arrays the epilogue writes (and, backward, reads), as tensor maps of [128, 64] boxes.
struct EpilogueMaps {
  CUtensorMap out;  // forward: pre; backward: dpre
  CUtensorMap act;
  CUtensorMap pre;  // backward: read
};
struct EpilogueArgs {
  float* partial;     // backward: [M/128, N] column sums of dpre per 128-row tile, or null
  const float* bias;  // [N] (zeros when the layer has none)
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

template <int Registers>
__device__ __forceinline__ void set_registers_down() { asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(Registers)); }
template <int Registers>
__device__ __forceinline__ void set_registers_up() { asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(Registers)); }
#endif

// Persistent: CTA b takes tiles b, b + G, b + 2G, ... (G CTAs, one per SM; a tile's column block varies
// fastest, so the CTAs at work together share A's rows and all of B in L2) and hands them to its two
// consumer warpgroups in turn. The loader fills one ring in tile order, so one consumer's multiplies run
// while the other applies its epilogue (ping-pong: the tensor cores stay busy while GELU runs on the
// CUDA cores). Fragment of consumer thread t (warp w = t/32, lane l): d[i][4j + 2h + e] is C at row
// 64i + 16w + l/4 + 8h, column 8j + 2(l%4) + e of the 128 x 128 tile (i, h, e < 2, j < 16).
template <bool Backward>
__global__ void __launch_bounds__(kThreads, 1) gemm_gelu_kernel(const __grid_constant__ CUtensorMap map_a, const __grid_constant__ CUtensorMap map_b,
                                                                const __grid_constant__ EpilogueMaps maps, EpilogueArgs args, int M, int K) {
#ifdef MM_GEMM_GELU_DEVICE
  extern __shared__ unsigned char smem_raw[];
  const uint32_t raw = smem_address(smem_raw), ring = (raw + 1023u) & ~1023u;  // the swizzle wants 1024-byte alignment
  const uint32_t epilogue0 = ring + kStages * kStageBytes;                      // consumer c's area at + c * kEpilogueBytes
  const uint32_t bars = epilogue0 + 2 * kEpilogueBytes;
  auto full = [&](int s) { return bars + 8u * s; };                        // ring stage s loaded
  auto empty = [&](int s) { return bars + 8u * (kStages + s); };           // ring stage s consumed
  auto pre_full = [&](int c) { return bars + 8u * (2 * kStages + c); };    // backward: consumer c's pre tile loaded
  auto pre_empty = [&](int c) { return bars + 8u * (2 * kStages + 2 + c); };  // ... and read
  // consumer c may start its next multiplies: the other consumer has seen its own slices arrive. Waits
  // on a barrier by parity must stay within one phase of it, so the consumers take the ring in turn.
  auto turn = [&](int c) { return bars + 8u * (2 * kStages + 4 + c); };
  const int n_tiles = args.N / kBN, tiles = (M / kBM) * n_tiles, k_blocks = K / kBK;
  if (threadIdx.x == 0) {
    for (int b = 0; b < kBarriers; ++b) barrier_init(bars + 8u * b, 1);
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
  const int warpgroup = threadIdx.x / 128, t = threadIdx.x % 128;

  if (warpgroup == 0) {  // the loader: one thread issues every TMA copy
    set_registers_down<40>();
    if (t != 0) return;
    int pos = 0;  // ring position: the stage is pos % kStages, its use pos / kStages
    for (int local = 0, tile = blockIdx.x; tile < tiles; ++local, tile += gridDim.x) {
      const int m0 = (tile / n_tiles) * kBM, n0 = (tile % n_tiles) * kBN;
      for (int kb = 0; kb < k_blocks; ++kb, ++pos) {
        const int s = pos % kStages;
        barrier_wait(empty(s), ((pos / kStages) & 1) ^ 1);
        barrier_expect_bytes(full(s), kStageBytes);
        tma_load(ring + s * kStageBytes, &map_a, kb * kBK, m0, full(s));
        tma_load(ring + s * kStageBytes + kTileABytes, &map_b, kb * kBK, n0, full(s));
      }
      if (Backward) {  // pre's tile into its consumer's area once that consumer's previous epilogue is done with it
        const int c = local % 2, use = local / 2;
        barrier_wait(pre_empty(c), (use & 1) ^ 1);
        barrier_expect_bytes(pre_full(c), kTileBytes);
        const uint32_t dst = epilogue0 + c * kEpilogueBytes;
        tma_load(dst, &maps.pre, n0, m0, pre_full(c));
        tma_load(dst + kHalfBytes, &maps.pre, n0 + 64, m0, pre_full(c));
      }
    }
    return;
  }

  set_registers_up<232>();
  const int c = warpgroup - 1, warp = t / 32, lane = t % 32;
  const uint32_t area = epilogue0 + c * kEpilogueBytes;
  unsigned char* area_ptr = smem_raw + (area - raw);
  auto sync_consumer = [&]() { asm volatile("bar.sync %0, 128;" ::"r"(1 + c) : "memory"); };
  for (int local = c, tile = blockIdx.x + c * gridDim.x; tile < tiles; local += 2, tile += 2 * gridDim.x) {
    const int m0 = (tile / n_tiles) * kBM, n0 = (tile % n_tiles) * kBN;
    float d[2][64];
    if (local > 0) barrier_wait(turn(c), ((local - 1) / 2) & 1);
    int pos = local * k_blocks;
    for (int kb = 0; kb < k_blocks; ++kb, ++pos) {
      const int s = pos % kStages;
      barrier_wait(full(s), (pos / kStages) & 1);
      const uint32_t a = ring + s * kStageBytes, b = a + kTileABytes;
      wgmma_fence();
#pragma unroll
      for (int k = 0; k < kBK / 16; ++k)
#pragma unroll
        for (int i = 0; i < 2; ++i) wgmma_m64n128k16(d[i], tile_descriptor(a + i * 64 * 128 + 32 * k), tile_descriptor(b + 32 * k), (kb > 0 || k > 0) ? 1u : 0u);
      wgmma_commit();
      wgmma_wait<1>();  // the previous slice's multiplies are done: give its stage back
      if (kb > 0 && t == 0) barrier_arrive(empty((pos - 1) % kStages));
    }
    if (t == 0) barrier_arrive(turn(1 - c));  // every slice of this tile has arrived: the other consumer's turn
    wgmma_wait<0>();
    if (t == 0) barrier_arrive(empty((pos - 1) % kStages));

    // epilogue: (row, col) of a swizzled [128, 64] half sits at row * 128 + ((col / 8) ^ (row % 8)) * 16 + (col % 8) * 2
    const int r8 = lane / 4;  // every row this thread holds is r8 modulo 8
    auto offset = [&](int i, int j, int h) { return (64 * i + 16 * warp + r8 + 8 * h) * 128 + (((j % 8) ^ r8) << 4) + 4 * (lane % 4); };
    // The epilogue is straight-line code (no branch inside its loops; bias is never null), so the
    // compiler can interleave many elements' erf: one warp per scheduler has little else to hide latency with.
    auto bias_at = [&](int j) { return *reinterpret_cast<const float2*>(args.bias + n0 + 8 * j + 2 * (lane % 4)); };
    if constexpr (!Backward) {  // pre's tile at area, act's at area + kTileBytes
      if (t == 0) asm volatile("cp.async.bulk.wait_group.read 0;" ::: "memory");  // this consumer's last stores have read the area
      sync_consumer();
      auto write_tiles = [&](auto with_act) {
#pragma unroll
        for (int i = 0; i < 2; ++i)
#pragma unroll
          for (int j = 0; j < 16; ++j)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
              const int at = (j / 8) * kHalfBytes + offset(i, j, h);
              const float2 v = __bfloat1622float2(__floats2bfloat162_rn(d[i][4 * j + 2 * h], d[i][4 * j + 2 * h + 1]));  // pre as stored
              *reinterpret_cast<__nv_bfloat162*>(area_ptr + at) = __floats2bfloat162_rn(v.x, v.y);
              if constexpr (decltype(with_act)::value)
                *reinterpret_cast<__nv_bfloat162*>(area_ptr + kTileBytes + at) = __floats2bfloat162_rn(gelu(v.x + bias_at(j).x), gelu(v.y + bias_at(j).y));
            }
      };
      if (args.write_act) write_tiles(std::true_type{});
      else write_tiles(std::false_type{});
      asm volatile("fence.proxy.async.shared::cta;" ::: "memory");  // the writes, visible to TMA
      sync_consumer();
      if (t == 0) {
        for (int half = 0; half < 2; ++half) {
          tma_store(&maps.out, area + half * kHalfBytes, n0 + 64 * half, m0);
          if (args.write_act) tma_store(&maps.act, area + kTileBytes + half * kHalfBytes, n0 + 64 * half, m0);
        }
        asm volatile("cp.async.bulk.commit_group;" ::: "memory");
      }
    } else {  // pre's tile at area; dpre's and act's 64-column halves, one half at a time, at area + kTileBytes
      barrier_wait(pre_full(c), (local / 2) & 1);
      unsigned char* out = area_ptr + kTileBytes;
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        if (t == 0) asm volatile("cp.async.bulk.wait_group.read 0;" ::: "memory");
        sync_consumer();
#pragma unroll
        for (int i = 0; i < 2; ++i)
#pragma unroll
          for (int j = 8 * half; j < 8 * half + 8; ++j) {
            const float2 b = bias_at(j);
#pragma unroll
            for (int h = 0; h < 2; ++h) {
              const int at = offset(i, j, h);
              float& v0 = d[i][4 * j + 2 * h];
              float& v1 = d[i][4 * j + 2 * h + 1];
              const float2 g = __bfloat1622float2(__floats2bfloat162_rn(v0, v1));  // dact as the unfused path stores it
              const float2 x = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(area_ptr + half * kHalfBytes + at));
              const float x0 = x.x + b.x, x1 = x.y + b.y;
              const __nv_bfloat162 dp = __floats2bfloat162_rn(gelu_grad(g.x, x0), gelu_grad(g.y, x1));
              *reinterpret_cast<__nv_bfloat162*>(out + at) = dp;
              *reinterpret_cast<__nv_bfloat162*>(out + kHalfBytes + at) = __floats2bfloat162_rn(gelu(x0), gelu(x1));
              const float2 rounded = __bfloat1622float2(dp);  // db1 sums the stored dpre
              v0 = rounded.x;
              v1 = rounded.y;
            }
          }
        asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
        sync_consumer();
        if (t == 0) {
          tma_store(&maps.out, area + kTileBytes, n0 + 64 * half, m0);
          tma_store(&maps.act, area + kTileBytes + kHalfBytes, n0 + 64 * half, m0);
          asm volatile("cp.async.bulk.commit_group;" ::: "memory");
        }
      }
      if (args.partial) {
        // column sums over the tile's 128 rows: each thread's four rows, the warp's 8 row groups (lanes
        // l/4), then the 4 warps in order, through the pre tile's space (every thread has read it)
        float* sums = reinterpret_cast<float*>(area_ptr);
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
        sync_consumer();
        float total = 0.f;
#pragma unroll
        for (int w = 0; w < 4; ++w) total += sums[w * kBN + t];
        args.partial[static_cast<size_t>(m0 / kBM) * args.N + n0 + t] = total;
        sync_consumer();
      }
      if (t == 0) barrier_arrive(pre_empty(c));  // the loader may bring this consumer's next pre tile
    }
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

// bias, or N zeros when it is null (kept in a scratch slot)
const float* bias_or_zeros(Context& ctx, const float* bias, int N) {
  if (bias) return bias;
  bool filled = false;
  float* zeros = ctx.keyed_scratch(kSlotZeroBias, static_cast<size_t>(N), N, &filled);
  if (!filled) MM_CUDA_CHECK(cudaMemsetAsync(zeros, 0, static_cast<size_t>(N) * sizeof(float), ctx.stream()));
  return zeros;
}

template <bool Backward>
void launch(Context& ctx, const bf16* a, const bf16* bt, const EpilogueMaps& maps, const EpilogueArgs& args, int M, int N, int K) {
  const CUtensorMap map_a = tile_map(ctx, a, M, K, kBM), map_b = tile_map(ctx, bt, N, K, kBN);
  MM_CUDA_CHECK(cudaFuncSetAttribute(gemm_gelu_kernel<Backward>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes));
  const int tiles = (M / kBM) * (N / kBN);
  gemm_gelu_kernel<Backward><<<std::min(tiles, ctx.sm_count()), kThreads, kSmemBytes, ctx.stream()>>>(map_a, map_b, maps, args, M, K);
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
  launch<false>(ctx, x, w, maps, EpilogueArgs{nullptr, bias_or_zeros(ctx, bias, N), N, act != nullptr}, M, N, K);
}

void gemm_gelu_backward(Context& ctx, bf16* dpre, bf16* act, float* dbias, const bf16* dout, const bf16* w, const bf16* pre, const float* bias, int M,
                        int N, int K) {
  auto* wt = reinterpret_cast<bf16*>(ctx.scratch(kSlotWeightT, (static_cast<size_t>(N) * K + 1) / 2));  // w^T [N, K]: K-major for the GEMM
  transpose_bf16_kernel<<<dim3((N + 31) / 32, (K + 31) / 32), dim3(32, 8), 0, ctx.stream()>>>(wt, w, K, N);
  MM_LAUNCH_CHECK();
  float* partial = dbias ? ctx.scratch(kSlotColumnPartial, static_cast<size_t>(M / kBM) * N) : nullptr;
  const EpilogueMaps maps{tile_map(ctx, dpre, M, N, kBM), tile_map(ctx, act, M, N, kBM), tile_map(ctx, pre, M, N, kBM)};
  launch<true>(ctx, dout, wt, maps, EpilogueArgs{partial, bias_or_zeros(ctx, bias, N), N, true}, M, N, K);
  if (dbias) accumulate_partials(ctx, dbias, partial, M / kBM, N);
}

}  // namespace mm::cuda
