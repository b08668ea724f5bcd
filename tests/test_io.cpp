// File formats and data pipeline: JSON, safetensors, shards, batching, tokenizer, prepare, bad input.
#include <cstring>
#include <fstream>

#include "core/batcher.h"
#include "core/dataset.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/safetensors.h"
#include "core/shards.h"
#include "core/stories.h"
#include "core/tokenizer.h"
#include "helpers.h"

using namespace mm;
using Catch::Matchers::Contains;

namespace {

// A shard with the given documents, vocab 50, pad 0, eos 2.
std::string make_shard(const test::TempDir& tmp, const std::vector<std::vector<int>>& docs) {
  const std::string path = tmp.file("s.bin");
  ShardWriter writer(path, ShardInfo{50, 0, 2, 1, 0x1234});
  for (const auto& d : docs) writer.add_document(d.data(), d.size());
  writer.finish();
  return path;
}

}  // namespace

TEST_CASE("json parses what TinyStories files contain and rejects malformed input", "[io][json]") {
  Json j = parse_json(R"({"story": "Tom said \"hi\"\n\u00e9\ud83d\ude00", "n": [1, 2.5, -3e2], "ok": true, "none": null})");
  CHECK(j.obj().at("story").str() == "Tom said \"hi\"\n\xc3\xa9\xf0\x9f\x98\x80");
  CHECK(j.obj().at("n").arr()[2].num() == -300);
  CHECK(parse_json(j.dump()).dump() == j.dump());
  for (const char* bad : {"{", "[1,]", "{\"a\" 1}", "\"abc", "{\"a\":1} x", "\"\\ud800\"", "nul"}) CHECK_THROWS(parse_json(bad));
}

TEST_CASE("safetensors round trip and rejection of damaged files", "[io][safetensors]") {
  test::TempDir tmp;
  const std::string path = tmp.file("a.safetensors");
  std::vector<float> a{1.5f, -2.0f, 3.25f, 0.0f, 7.0f, 8.0f};
  std::vector<uint16_t> b{1, 2, 3};
  SafetensorsFile out;
  out.metadata = {{"model", "mixer:d8"}, {"k", "v"}};
  out.tensors.push_back(make_tensor("w.weight", DType::F32, {2, 3}, a.data()));
  out.tensors.push_back(make_tensor("ids", DType::U16, {3}, b.data()));
  write_safetensors(path, out);
  SafetensorsFile in = read_safetensors(path);
  CHECK(in.metadata == out.metadata);
  REQUIRE(in.tensors.size() == 2);
  CHECK(in.at("w.weight", path).shape == std::vector<int64_t>{2, 3});
  CHECK(std::memcmp(in.at("w.weight", path).bytes.data(), a.data(), 24) == 0);
  CHECK(in.at("ids", path).as<uint16_t>()[2] == 3);
  CHECK_THROWS_WITH(in.at("missing", path), Contains("missing"));

  const std::string bytes = read_text_file(path);
  test::write_text(tmp.file("trunc"), bytes.substr(0, bytes.size() - 4));
  CHECK_THROWS_WITH(read_safetensors(tmp.file("trunc")), Contains("truncated"));
  test::write_text(tmp.file("tiny"), "abc");
  CHECK_THROWS_WITH(read_safetensors(tmp.file("tiny")), Contains("truncated"));
  std::string huge = bytes;
  uint64_t len = 1ull << 40;
  std::memcpy(huge.data(), &len, 8);
  test::write_text(tmp.file("huge"), huge);
  CHECK_THROWS_WITH(read_safetensors(tmp.file("huge")), Contains("header length"));
  std::string garbled = bytes;
  garbled[10] = '#';
  test::write_text(tmp.file("garbled"), garbled);
  CHECK_THROWS_WITH(read_safetensors(tmp.file("garbled")), Contains("header"));
  CHECK_THROWS_WITH(read_safetensors(tmp.file("nope")), Contains("no such file"));
}

TEST_CASE("token shards round trip and reject corruption", "[io][shards]") {
  test::TempDir tmp;
  const std::string path = make_shard(tmp, {{5, 6, 7}, {}, {8, 9, 10, 11, 12}});
  ShardReader reader(path);
  CHECK(reader.n_docs() == 3);
  CHECK(reader.n_tokens() == 8);
  CHECK(reader.doc_end(1) - reader.doc_begin(1) == 0);
  CHECK(reader.tokens()[reader.doc_begin(2) + 4] == 12);
  CHECK(reader.header().tokenizer_hash == 0x1234);

  const std::string bytes = read_text_file(path);
  test::write_text(tmp.file("trunc.bin"), bytes.substr(0, bytes.size() - 8));
  CHECK_THROWS_WITH(ShardReader(tmp.file("trunc.bin")), Contains("truncated or corrupt"));
  std::string magic = bytes;
  magic[0] = 'X';
  test::write_text(tmp.file("magic.bin"), magic);
  CHECK_THROWS_WITH(ShardReader(tmp.file("magic.bin")), Contains("bad magic"));
  std::string version = bytes;
  version[8] = 9;
  test::write_text(tmp.file("version.bin"), version);
  CHECK_THROWS_WITH(ShardReader(tmp.file("version.bin")), Contains("version"));
  std::string token = bytes;
  token[64] = static_cast<char>(200);  // token 200 >= vocab 50
  test::write_text(tmp.file("token.bin"), token);
  CHECK_THROWS_WITH(ShardReader(tmp.file("token.bin")), Contains("outside the vocabulary"));
  test::write_text(tmp.file("empty.bin"), "");
  CHECK_THROWS_WITH(ShardReader(tmp.file("empty.bin")), Contains("truncated"));
}

TEST_CASE("batching: left/right padding, packing, pad masking, seeded order and cursor resume", "[io][batcher]") {
  test::TempDir tmp;
  const std::string path = make_shard(tmp, {{10, 11, 12}, {20, 21, 22, 23, 24, 25, 26}, {30}});
  ShardReader shard(path);
  const int T = 4;
  std::vector<int32_t> in(T), tg(T);

  Batcher left(shard, T, 1, Padding::Left, 1, false);
  left.fill_row(0, in.data(), tg.data());  // row = [0 0 10 11 12] -> inputs 0 0 10 11, targets x 10 11 12
  CHECK(in == std::vector<int32_t>{0, 0, 10, 11});
  CHECK(tg == std::vector<int32_t>{-1, 10, 11, 12});
  left.fill_row(1, in.data(), tg.data());  // truncated to T+1 tokens
  CHECK(in == std::vector<int32_t>{20, 21, 22, 23});
  CHECK(tg == std::vector<int32_t>{21, 22, 23, 24});

  Batcher right(shard, T, 1, Padding::Right, 1, false);
  right.fill_row(0, in.data(), tg.data());  // row = [10 11 12 0 0]
  CHECK(in == std::vector<int32_t>{10, 11, 12, 0});
  CHECK(tg == std::vector<int32_t>{11, 12, -1, -1});
  right.fill_row(2, in.data(), tg.data());
  CHECK(tg == std::vector<int32_t>{-1, -1, -1, -1});

  // packed stream: 10 11 12 EOS 20 21 22 23 24 25 26 EOS 30 EOS (14 tokens) -> (14-1)/4 = 3 rows
  Batcher packed(shard, T, 1, Padding::Packed, 1, false);
  CHECK(packed.rows_per_epoch() == 3);
  packed.fill_row(0, in.data(), tg.data());
  CHECK(in == std::vector<int32_t>{10, 11, 12, 2});
  CHECK(tg == std::vector<int32_t>{11, 12, 2, 20});
  packed.fill_row(2, in.data(), tg.data());
  CHECK(in == std::vector<int32_t>{24, 25, 26, 2});
  CHECK(tg == std::vector<int32_t>{25, 26, 2, 30});

  // same seed -> same order; a saved cursor resumes the exact sequence across epoch boundaries
  Batcher a(shard, T, 2, Padding::Left, 7), b(shard, T, 2, Padding::Left, 7);
  Batch ba, bb;
  for (int i = 0; i < 3; ++i) a.next(ba);
  BatchCursor saved = a.cursor();
  std::vector<std::vector<int32_t>> expected;
  for (int i = 0; i < 4; ++i) {
    a.next(ba);
    expected.push_back(ba.inputs);
  }
  b.set_cursor(saved);
  for (int i = 0; i < 4; ++i) {
    b.next(bb);
    CHECK(bb.inputs == expected[i]);
  }
  CHECK(a.cursor().epoch >= 2);
}

TEST_CASE("story readers: text, JSONL, JSON arrays and their errors", "[io][stories]") {
  test::TempDir tmp;
  test::write_text(tmp.file("a.txt"), "Once upon a time.\nThe end.\n<|endoftext|>\nSecond story.\n<|endoftext|>\n\n");
  auto text = read_stories(tmp.file("a.txt"));
  REQUIRE(text.size() == 2);
  CHECK(text[0].text == "Once upon a time.\nThe end.");
  test::write_text(tmp.file("b.jsonl"), "{\"story\": \"One\", \"summary\": \"S\"}\n\n{\"text\": \"Two\"}\n");
  auto jsonl = read_stories(tmp.file("b.jsonl"));
  REQUIRE(jsonl.size() == 2);
  CHECK(jsonl[0].summary == "S");
  CHECK(jsonl[1].text == "Two");
  test::write_text(tmp.file("c.json"), "[{\"story\": \"A\", \"summary\": \"x\"}, {\"story\": \"B\"}]");
  CHECK(read_stories(tmp.file("c.json")).size() == 2);

  test::write_text(tmp.file("bad.jsonl"), "{\"story\": \"ok\"}\n{\"story\": oops}\n");
  CHECK_THROWS_WITH(read_stories(tmp.file("bad.jsonl")), Contains("bad.jsonl:2") && Contains("malformed JSON"));
  test::write_text(tmp.file("nofield.jsonl"), "{\"title\": \"x\"}\n");
  CHECK_THROWS_WITH(read_stories(tmp.file("nofield.jsonl")), Contains("no \"story\""));
  test::write_text(tmp.file("latin1.txt"), "caf\xe9 story\n");
  CHECK_THROWS_WITH(read_stories(tmp.file("latin1.txt")), Contains("invalid UTF-8 at byte 3"));
  test::write_text(tmp.file("empty.txt"), "  \n");
  CHECK_THROWS_WITH(read_stories(tmp.file("empty.txt")), Contains("empty"));
  CHECK_THROWS_WITH(read_stories(tmp.file("missing.txt")), Contains("no such file"));
  CHECK(find_invalid_utf8("ok \xe2\x82\xac") == std::string_view::npos);
  CHECK(find_invalid_utf8("\xe2\x82") == 0);
  CHECK(find_invalid_utf8("\xc0\xaf") == 0);  // overlong
}

TEST_CASE("tokenizer round trip on the shipped stories", "[io][tokenizer]") {
  Tokenizer tok(test::data_dir() + "/tokenizers/tok4096.model");
  CHECK(tok.vocab_size() == 4096);
  CHECK(tok.eos_id() == 2);
  CHECK(tok.pad_id() == 2);
  auto stories = read_stories(test::data_dir() + "/tinystories/valid.txt");
  for (size_t i = 0; i < 50; ++i) {
    auto ids = tok.encode(stories[i].text);
    CHECK(tok.decode(ids) == stories[i].text);
  }
  test::TempDir tmp;
  test::write_text(tmp.file("junk.model"), "not a model");
  CHECK_THROWS_WITH(Tokenizer(tmp.file("junk.model")), Contains("not a SentencePiece model"));
}

TEST_CASE("prepare writes shards whose counts match the tokenizer alone and the manifest", "[io][prepare]") {
  test::TempDir tmp;
  auto stories = read_stories(test::data_dir() + "/tinystories/valid.txt");
  std::string train_text, valid_text;
  for (size_t i = 0; i < 60; ++i) (i < 50 ? train_text : valid_text) += stories[i].text + "\n<|endoftext|>\n";
  test::write_text(tmp.file("train.txt"), train_text);
  test::write_text(tmp.file("valid.txt"), valid_text);
  std::string out;
  const std::string tok = test::data_dir() + "/tokenizers/tok4096.model";
  REQUIRE(test::run_maskmix(fmt::format("prepare --input {} --valid {} --tokenizer {} --out {}", tmp.file("train.txt"), tmp.file("valid.txt"), tok,
                                  tmp.file("ts")), &out) == 0);
  Tokenizer tokenizer(tok);
  uint64_t expected = 0;
  for (size_t i = 0; i < 50; ++i) expected += tokenizer.encode(stories[i].text).size();
  PreparedData data = PreparedData::open(tmp.file("ts"));
  CHECK(data.train->n_docs() == 50);
  CHECK(data.valid->n_docs() == 10);
  CHECK(data.train->n_tokens() == expected);
  Json manifest = parse_json(read_text_file(tmp.file("ts/manifest.json")));
  CHECK(static_cast<uint64_t>(manifest.obj().at("train").obj().at("tokens").num()) == expected);
  CHECK_THAT(out, Contains(fmt::format("{} tokens", expected)));

  // a new tokenizer trained by prepare itself
  REQUIRE(test::run_maskmix(fmt::format("prepare --input {} --vocab 512 --valid-fraction 0.2 --out {}", tmp.file("train.txt"), tmp.file("own")), &out) == 0);
  PreparedData own = PreparedData::open(tmp.file("own"));
  CHECK(own.train->header().vocab_size == 512);
  CHECK(own.train->n_docs() + own.valid->n_docs() == 50);

  // shard from another tokenizer is refused
  std::filesystem::copy_file(tmp.file("own/train.bin"), tmp.file("ts/train.bin"), std::filesystem::copy_options::overwrite_existing);
  CHECK_THROWS_WITH(PreparedData::open(tmp.file("ts")), Contains("another tokenizer"));
}

TEST_CASE("bad command lines and inputs give one-line errors with a HINT and no output", "[io][cli]") {
  test::TempDir tmp;
  std::string out;
  CHECK(test::run_maskmix("frobnicate", &out) == 2);
  CHECK_THAT(out, Contains("unknown command") && Contains("HINT"));
  CHECK(test::run_maskmix("prepare --nope", &out) == 2);
  CHECK(test::run_maskmix("prepare --input x.txt --vocab 70000 --out " + tmp.file("o"), &out) == 2);
  CHECK_THAT(out, Contains("65535"));
  CHECK(test::run_maskmix("prepare --input " + tmp.file("missing.txt") + " --vocab 300 --out " + tmp.file("o"), &out) == 1);
  CHECK_THAT(out, Contains("no such file") && Contains("HINT"));
  CHECK_FALSE(std::filesystem::exists(tmp.file("o")));
  test::write_text(tmp.file("bad.jsonl"), "{\"story\": \"fine\"}\n{broken\n");
  CHECK(test::run_maskmix("prepare --input " + tmp.file("bad.jsonl") + " --vocab 300 --out " + tmp.file("o"), &out) == 1);
  CHECK_THAT(out, Contains("bad.jsonl:2"));
  CHECK(std::count(out.begin(), out.end(), '\n') == 1);
  CHECK(test::run_maskmix("train --data " + tmp.file("nothing") + " --steps 1", &out) == 1);
  CHECK_THAT(out, Contains("not a prepared data folder"));
  CHECK(test::run_maskmix("invert --steps 0 --untrained mixer:d8:l1:c8 --out " + tmp.file("inv.csv"), &out) == 2);
  CHECK_THAT(out, Contains("--steps"));
  CHECK(test::run_maskmix("train --help", &out) == 0);
  CHECK_THAT(out, Contains("--resume"));
}
