// CUDA graph capture and replay (see graph.cuh).
#include "graph.cuh"

namespace mm::cuda {

namespace {
class GraphRecording final : public Recording {
 public:
  GraphRecording(cudaGraphExec_t exec, cudaStream_t stream) : exec_(exec), stream_(stream) {}
  ~GraphRecording() override { cudaGraphExecDestroy(exec_); }
  GraphRecording(const GraphRecording&) = delete;
  GraphRecording& operator=(const GraphRecording&) = delete;
  void replay() override { MM_CUDA_CHECK(cudaGraphLaunch(exec_, stream_)); }

 private:
  cudaGraphExec_t exec_;
  cudaStream_t stream_;
};

class EventStopwatch final : public Stopwatch {
 public:
  explicit EventStopwatch(cudaStream_t stream) : stream_(stream) {
    MM_CUDA_CHECK(cudaEventCreate(&start_));
    const cudaError_t status = cudaEventCreate(&stop_);
    if (status != cudaSuccess) cudaEventDestroy(start_);  // the destructor will not run
    MM_CUDA_CHECK(status);
  }
  ~EventStopwatch() override {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  EventStopwatch(const EventStopwatch&) = delete;
  EventStopwatch& operator=(const EventStopwatch&) = delete;
  void start() override { MM_CUDA_CHECK(cudaEventRecord(start_, stream_)); }
  void stop() override { MM_CUDA_CHECK(cudaEventRecord(stop_, stream_)); }
  double seconds() override {
    MM_CUDA_CHECK(cudaEventSynchronize(stop_));
    float ms = 0.0f;
    MM_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
    return ms / 1e3;
  }

 private:
  cudaStream_t stream_;
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

// Ends a capture whatever its state and clears the error it may have left.
void abandon_capture(cudaStream_t stream) {
  cudaGraph_t graph = nullptr;
  cudaStreamEndCapture(stream, &graph);
  if (graph) cudaGraphDestroy(graph);
  cudaGetLastError();
}
}  // namespace

std::unique_ptr<Recording> record_graph(Context& ctx, const std::function<void()>& issue) {
  // all earlier work has finished, so nothing outside the capture is pending on the stream
  MM_CUDA_CHECK(cudaStreamSynchronize(ctx.stream()));
  if (cudaStreamBeginCapture(ctx.stream(), cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
    cudaGetLastError();
    return nullptr;
  }
  try {
    issue();
  } catch (const std::exception&) {  // e.g. a scratch buffer that had to grow (a synchronizing call)
    abandon_capture(ctx.stream());
    return nullptr;
  }
  cudaGraph_t graph = nullptr;
  if (cudaStreamEndCapture(ctx.stream(), &graph) != cudaSuccess || graph == nullptr) {
    abandon_capture(ctx.stream());
    return nullptr;
  }
  cudaGraphExec_t exec = nullptr;
  const cudaError_t status = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  if (status != cudaSuccess) {
    cudaGetLastError();
    return nullptr;
  }
  return std::make_unique<GraphRecording>(exec, ctx.stream());
}

std::unique_ptr<Stopwatch> stream_stopwatch(Context& ctx) { return std::make_unique<EventStopwatch>(ctx.stream()); }

}  // namespace mm::cuda
