// Entry points of the subcommands; each parses its own options (argv[0] is the command name).
#pragma once
#include <string>
#include <vector>

namespace mm {

int cmd_prepare(int argc, char** argv);
int cmd_train(int argc, char** argv);
int cmd_generate(int argc, char** argv);
int cmd_invert(int argc, char** argv);
int cmd_embed(int argc, char** argv);
int cmd_retrieve(int argc, char** argv);
int cmd_compare(int argc, char** argv);
int cmd_bench(int argc, char** argv);

struct CommandInfo {
  const char* name;
  int (*run)(int, char**);
  const char* summary;
};
const std::vector<CommandInfo>& all_commands();

}  // namespace mm
