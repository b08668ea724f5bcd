// Shared CLI plumbing.
#include "cmd/cli.h"

#include <iostream>

#include "core/error.h"

namespace mm {

bool parse_cli(cxxopts::Options& options, int argc, char** argv, cxxopts::ParseResult& result) {
  options.add_options("help")("h,help", "show this help");
  try {
    result = options.parse(argc, argv);
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

void not_built_yet(const std::string& command, const std::string& issue) {
  fail(fmt::format("`maskmix {}` is not built yet", command), fmt::format("it arrives with {}; see README.md for what works today", issue));
}

}  // namespace mm
