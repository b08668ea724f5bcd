// maskmix: train, probe and compare masked mixers against transformers. Front door and error handling.
#include <cstring>
#include <iostream>

#include <cxxopts.hpp>

#include "cmd/commands.h"
#include "core/error.h"

namespace mm {

const std::vector<CommandInfo>& all_commands() {
  static const std::vector<CommandInfo> commands = {
      {"prepare", cmd_prepare, "tokenize TinyStories (text/JSONL/JSON) into token shards"},
      {"train", cmd_train, "train a masked mixer, transformer or hybrid on prepared shards"},
      {"generate", cmd_generate, "sample text from a checkpoint"},
      {"invert", cmd_invert, "recover inputs from hidden states by gradient descent (claim 1)"},
      {"embed", cmd_embed, "embed texts with a trained model"},
      {"retrieve", cmd_retrieve, "summary-to-story retrieval: train, InfoNCE, eval (claim 3)"},
      {"compare", cmd_compare, "tables of runs at equal steps/tokens/time/FLOPs (claim 2)"},
      {"bench", cmd_bench, "time training steps of named configs"},
  };
  return commands;
}

}  // namespace mm

static void print_usage() {
  std::cout << "maskmix: masked mixers vs transformers (Badger, arXiv 2409.01482)\n\n"
               "usage: maskmix <command> [options]   (maskmix <command> --help for its options)\n\ncommands:\n";
  for (const auto& c : mm::all_commands()) std::cout << fmt::format("  {:<10} {}\n", c.name, c.summary);
}

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    print_usage();
    return argc < 2 ? 2 : 0;
  }
  const std::string name = argv[1];
  try {
    for (const auto& command : mm::all_commands())
      if (name == command.name) return command.run(argc - 1, argv + 1);
    throw mm::UsageError(fmt::format("unknown command '{}'", name), "run `maskmix --help` for the list of commands");
  } catch (const mm::UsageError& e) {
    std::cerr << "maskmix: error: " << e.what() << " (HINT: " << e.hint() << ")" << std::endl;
    return 2;
  } catch (const mm::Error& e) {
    std::cerr << "maskmix: error: " << e.what() << " (HINT: " << e.hint() << ")" << std::endl;
    return 1;
  } catch (const std::bad_alloc&) {
    std::cerr << "maskmix: error: out of memory (HINT: use a smaller --batch or model)" << std::endl;
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "maskmix: error: " << e.what() << " (HINT: this is unexpected; please report it with the command line)" << std::endl;
    return 1;
  }
}
