// SentencePiece tokenizer: load, encode/decode, and training a new BPE with Llama-style settings.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sentencepiece { class SentencePieceProcessor; }

namespace mm {

class Tokenizer {
 public:
  explicit Tokenizer(const std::string& model_path);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  std::vector<int> encode(const std::string& text) const;  // no BOS/EOS (as the paper)
  std::string decode(const std::vector<int>& ids) const;
  std::string piece(int id) const;
  int vocab_size() const;
  int bos_id() const;
  int eos_id() const;
  int pad_id() const;  // the model's pad id, or EOS when it has none (the paper pads with EOS)
  uint64_t hash() const { return hash_; }  // fnv1a64 of the model file
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  uint64_t hash_ = 0;
  std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;
};

// Trains a BPE on `texts` (llama2.c recipe: byte fallback, digits split, identity normalization) and
// writes `model_path`.
void train_tokenizer(const std::vector<std::string>& texts, int vocab_size, const std::string& model_path, int threads);

}  // namespace mm
