// CUDA graphs and events on the context's stream: Ops::record for the CUDA backend (the ops `issue`
// makes are captured, not run, into a graph, instantiated once and replayed with one launch) and
// Ops::stopwatch (two timing events).
#pragma once
#include <functional>
#include <memory>

#include "context.cuh"

namespace mm::cuda {

// nullptr when capture fails (an op that synchronizes or allocates, or a CUDA error): the stream is
// left usable and the caller runs the ops directly.
std::unique_ptr<Recording> record_graph(Context& ctx, const std::function<void()>& issue);

std::unique_ptr<Stopwatch> stream_stopwatch(Context& ctx);

}  // namespace mm::cuda
