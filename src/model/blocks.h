// The residual blocks of every model kind, written once against Ops<T>:
//   MixerBlock  x += Mix(LN(x));  x += W2 GELU(W1 LN(x) + b1) + b2      (flat / heads / parallel / expanded)
//   LlamaBlock  x += Wo Attn(RoPE(Wqkv RMS(x)));  x += Wd SwiGLU(Wgu RMS(x))
//   HybridBlock the Llama block with the attention output a replaced by a + Mix(a)  (the "transfixer")
//   GptBlock    post-LN: n = LN1(x + Attn(x));  y = LN2(n + MLP(n))        (OpenAI GPT)
// Each block saves what its backward needs; x must stay alive between forward and backward.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/params.h"
#include "ops/ops.h"

namespace mm {

template <class T>
struct ParamStore {
  T* params = nullptr;  // flat parameter buffer (backend memory)
  T* grads = nullptr;   // same layout
  const ParamTable* table = nullptr;
  T* p(size_t ref) const { return params + (*table)[ref].offset; }
  T* g(size_t ref) const { return grads + (*table)[ref].offset; }
};

// Scratch shared by all blocks during backward: three buffers of rows * width elements.
template <class T>
struct Workspace {
  T* a = nullptr;
  T* b = nullptr;
  T* c = nullptr;
};

// Initialisation rules of the two schemes (PAPER.md 1.2 and 2.1).
struct InitRules {
  bool hf;  // N(0, 0.02) weights, zero biases; else PyTorch defaults U(+-1/sqrt(fan_in)), Embedding N(0,1)
  void weight(ParamTable& t, std::string name, std::vector<int64_t> shape, int fan_in, bool lower_triangular = false) const;
  void bias(ParamTable& t, std::string name, std::vector<int64_t> shape, int fan_in) const;
  void embedding(ParamTable& t, std::string name, std::vector<int64_t> shape) const;
};
InitRules init_rules_for(InitScheme scheme, ModelKind family);

template <class T>
class Block {
 public:
  virtual ~Block() = default;
  virtual void forward(const T* x, T* y, int B) = 0;                                // x, y [B,T,D]
  virtual void backward(const T* dy, T* dx, int B, const Workspace<T>& ws) = 0;     // dx overwritten
  virtual size_t activation_elements() const = 0;  // saved for backward, at the block's max batch
  // Row widths (elements per token) that workspace buffers a, b and c must hold for this config.
  struct ScratchWidths {
    int a, b, c;
  };
  static ScratchWidths scratch_widths(const ModelConfig& c);
};

// Buffers shared by every block (null where not used). With --recompute, activations rebuilt in backward
// instead of stored per block: the feed-forward state (Ops::ffn_forward) and, for Llama/hybrid, the
// self-attention state (Ops::self_attention_forward; null when the backend's attention is fused: its
// state is small). `transient` [N,D]: a forward-only array of one block at a time, dead before the next
// block runs: the mixing output of the mixer variants other than flat (consumed by the residual add). (The pre-norms of the sublayers
// live inside the sublayer ops, Ops::PreNorm, which keep the normalized rows in their own state.)
template <class T>
struct SharedBuffers {
  T* ffn_state = nullptr;
  T* attention_state = nullptr;
  T* transient = nullptr;
};

template <class T>
std::unique_ptr<Block<T>> make_block(const ModelConfig& config, int layer, ParamTable& table, const ParamStore<T>& store, Ops<T>& ops,
                                     int max_batch, SharedBuffers<T> shared = {});

}  // namespace mm
