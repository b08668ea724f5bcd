// Shared CLI plumbing for the subcommands: option parsing with --help, and the command line for .meta.
#pragma once
#include <cxxopts.hpp>
#include <string>

namespace mm {

// Parses argv; prints help and returns nullopt-like false when --help was given.
// Unknown options and bad values raise UsageError (exit code 2).
bool parse_cli(cxxopts::Options& options, int argc, char** argv, cxxopts::ParseResult& result);

std::string joined_command_line(int argc, char** argv);

}  // namespace mm
