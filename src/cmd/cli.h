// Shared CLI plumbing for the subcommands: option parsing with --help, and the command line for .meta.
#pragma once
#include <cxxopts.hpp>
#include <string>

namespace mm {

// Parses argv; prints help and returns nullopt-like false when --help was given.
// Unknown options and bad values raise UsageError (exit code 2).
bool parse_cli(cxxopts::Options& options, int argc, char** argv, cxxopts::ParseResult& result);

std::string joined_command_line(int argc, char** argv);

// Raised by commands that exist in the CLI but whose implementation has not landed yet.
[[noreturn]] void not_built_yet(const std::string& command, const std::string& issue);

}  // namespace mm
