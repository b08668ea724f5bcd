// Training FLOPs per token (DESIGN.md 6): 6 x (weights used per token: every matrix except the
// embedding lookup, head included) + 6 * n_ctx * width for each n x n mixing matrix (counted dense)
// + 12 * n_ctx * d per attention layer. Used for MFU and equal-FLOP comparisons.
#pragma once
#include "model/config.h"
#include "model/params.h"

namespace mm {

double training_flops_per_token(const ModelConfig& config, const ParamTable& table);

}  // namespace mm
