// Signal handling: the flag must be a static, async-signal-safe atomic.
#include "core/signals.h"

#include <atomic>
#include <csignal>

namespace mm {

namespace {
std::atomic<bool>& stop_flag() {
  static std::atomic<bool> flag{false};
  return flag;
}
extern "C" void on_stop_signal(int) { stop_flag().store(true); }
}  // namespace

void StopRequest::install() {
  stop_flag();  // construct before any signal can arrive
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
}
bool StopRequest::requested() { return stop_flag().load(); }
void StopRequest::reset() { stop_flag().store(false); }

}  // namespace mm
