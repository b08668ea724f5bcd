// Shared by commands that read a model: --checkpoint FILE or --untrained DESCRIPTOR (+ --init, --seed).
#pragma once
#include <cxxopts.hpp>
#include <string>
#include <vector>

#include "model/checkpoint.h"

namespace mm {

void add_model_source_options(cxxopts::Options& options);
// Loads the checkpoint, or builds the untrained config (params empty: initialise from --seed).
Checkpoint model_from_args(const cxxopts::ParseResult& args, int vocab);

}  // namespace mm
