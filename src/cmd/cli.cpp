// Shared CLI plumbing.
#include "cmd/cli.h"

#include <cctype>
#include <iostream>
#include <vector>

#include "core/error.h"

namespace mm {

bool parse_cli(cxxopts::Options& options, int argc, char** argv, cxxopts::ParseResult& result) {
  options.add_options("help")("h,help", "show this help");
  // cxxopts treats one-letter names as short options; accept the long spelling too (--n 32 == -n 32).
  std::vector<std::string> rewritten(argv, argv + argc);
  for (std::string& arg : rewritten)
    if (arg.size() == 3 && arg[0] == '-' && arg[1] == '-' && std::isalpha(static_cast<unsigned char>(arg[2]))) arg.erase(0, 1);
  std::vector<char*> args;
  for (std::string& arg : rewritten) args.push_back(arg.data());
  try {
    result = options.parse(argc, args.data());
  } catch (const cxxopts::exceptions::exception& e) {
    throw UsageError(e.what(), fmt::format("run `maskmix {} --help` for the options", options.program().substr(8)));
  }
  if (result.count("help")) {
    std::cout << options.help() << std::endl;
    return false;
  }
  if (!result.unmatched().empty())
    throw UsageError(fmt::format("unexpected argument '{}'", result.unmatched().front()),
                     fmt::format("run `maskmix {} --help` for the options", options.program().substr(8)));
  return true;
}

std::string joined_command_line(int argc, char** argv) {
  std::string line = "maskmix";
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    line += " " + (arg.find_first_of(" \"'") == std::string::npos ? arg : "'" + arg + "'");
  }
  return line;
}


}  // namespace mm
