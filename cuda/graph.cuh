// CUDA graphs: Ops::record for the CUDA backend. The ops `issue` makes on the context's stream are
// captured (not run) into a graph, instantiated once and replayed with one launch.
#pragma once
#include <functional>
#include <memory>

#include "context.cuh"

namespace mm::cuda {

// nullptr when capture fails (an op that synchronizes or allocates, or a CUDA error): the stream is
// left usable and the caller runs the ops directly.
std::unique_ptr<Recording> record_graph(Context& ctx, const std::function<void()>& issue);

}  // namespace mm::cuda
