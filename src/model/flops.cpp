// FLOP counting from the parameter table: mixing matrices and attention are counted per token.
#include "model/flops.h"

namespace mm {

double training_flops_per_token(const ModelConfig& c, const ParamTable& table) {
  double flops = 0;
  for (const ParamInfo& p : table.entries()) {
    if (p.shape.size() < 2) continue;                 // norms and biases: negligible
    if (p.name == "wte.weight" && !c.tied) continue;  // a lookup, not a matmul
    if (p.name == "wpe.weight") continue;
    if (p.lower_triangular) {
      // One [To,Ti] mixing matrix applied to every feature column: per token To*Ti*width/n_ctx MACs.
      const double To = static_cast<double>(p.shape[p.shape.size() - 2]), Ti = static_cast<double>(p.shape.back());
      const double groups = static_cast<double>(p.numel) / (To * Ti);
      const double width = static_cast<double>(c.d_model) / (p.shape.size() == 3 ? groups : 1.0);
      flops += 6.0 * groups * To * Ti * width / c.n_ctx;
      continue;
    }
    flops += 6.0 * static_cast<double>(p.numel);
  }
  if (c.has_attention()) flops += 12.0 * c.n_layers * c.n_ctx * c.d_model;
  return flops;
}

}  // namespace mm
