// SentencePiece wrapper.
#include "core/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstdio>

#include "core/error.h"
#include "core/fileio.h"

namespace mm {

Tokenizer::Tokenizer(const std::string& model_path)
    : path_(model_path), processor_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  std::string bytes = read_text_file(model_path);
  hash_ = fnv1a64(bytes);
  auto status = processor_->LoadFromSerializedProto(bytes);
  if (!status.ok())
    fail(fmt::format("{}: not a SentencePiece model: {}", model_path, status.ToString()),
         "pass a .model file written by SentencePiece, e.g. ../shared/data/tokenizers/tok4096.model");
}

Tokenizer::~Tokenizer() = default;

std::vector<int> Tokenizer::encode(const std::string& text) const {
  std::vector<int> ids;
  auto status = processor_->Encode(text, &ids);
  if (!status.ok()) fail(fmt::format("tokenizer {}: encode failed: {}", path_, status.ToString()), "check that the text is valid UTF-8");
  return ids;
}

std::string Tokenizer::decode(const std::vector<int>& ids) const {
  std::string text;
  auto status = processor_->Decode(ids, &text);
  if (!status.ok()) fail(fmt::format("tokenizer {}: decode failed: {}", path_, status.ToString()), "token ids must be below the vocabulary size");
  return text;
}

std::string Tokenizer::piece(int id) const { return processor_->IdToPiece(id); }
int Tokenizer::vocab_size() const { return processor_->GetPieceSize(); }
int Tokenizer::bos_id() const { return processor_->bos_id(); }
int Tokenizer::eos_id() const { return processor_->eos_id(); }
int Tokenizer::pad_id() const { return processor_->pad_id() >= 0 ? processor_->pad_id() : processor_->eos_id(); }

namespace {
class VectorIterator : public sentencepiece::SentenceIterator {
 public:
  explicit VectorIterator(const std::vector<std::string>& texts) : texts_(texts) {}
  bool done() const override { return index_ >= texts_.size(); }
  void Next() override { ++index_; }
  const std::string& value() const override { return texts_[index_]; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  const std::vector<std::string>& texts_;
  size_t index_ = 0;
};
}  // namespace

void train_tokenizer(const std::vector<std::string>& texts, int vocab_size, const std::string& model_path, int threads) {
  check(vocab_size >= 260 && vocab_size <= 65535, fmt::format("--vocab {} is out of range", vocab_size),
        "use 260..65535 (shards store uint16 tokens; byte fallback needs 256 + specials)");
  // SentencePiece treats each input line as a sentence, as llama2.c's recipe trains on lines.
  std::vector<std::string> lines;
  for (const std::string& text : texts) {
    size_t start = 0;
    while (start <= text.size()) {
      size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      if (end > start) lines.emplace_back(text.substr(start, end - start));
      start = end + 1;
    }
  }
  VectorIterator iterator(lines);
  std::string prefix = model_path.substr(0, model_path.size() - (model_path.ends_with(".model") ? 6 : 0));
  std::string args = fmt::format(
      "--model_prefix={} --model_type=bpe --vocab_size={} --self_test_sample_size=0 --character_coverage=1.0 "
      "--num_threads={} --split_digits=true --allow_whitespace_only_pieces=true --byte_fallback=true "
      "--unk_surface=\\342\\201\\207 --normalization_rule_name=identity --max_sentence_length=16384 "
      "--input_sentence_size=2000000 --shuffle_input_sentence=true --minloglevel=1",
      prefix, vocab_size, threads);
  auto status = sentencepiece::SentencePieceTrainer::Train(args, &iterator);
  if (!status.ok())
    fail(fmt::format("tokenizer training failed: {}", status.ToString()), "--vocab must cover 256 byte pieces, 3 specials and every distinct character, and not exceed what the text supports; adjust --vocab or give more text");
  std::remove((prefix + ".vocab").c_str());
}

}  // namespace mm
