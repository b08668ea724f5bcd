// Error type of maskmix: every failure a user can cause carries a one-line message and a HINT.
#pragma once
#include <stdexcept>
#include <string>
#include <utility>

#include <fmt/core.h>

namespace mm {

class Error : public std::runtime_error {
 public:
  Error(std::string message, std::string hint)
      : std::runtime_error(std::move(message)), hint_(std::move(hint)) {}
  const std::string& hint() const { return hint_; }

 private:
  std::string hint_;
};

// Exit code for usage errors (unknown command/option), distinct from runtime failures (1).
struct UsageError : Error {
  using Error::Error;
};

[[noreturn]] inline void fail(std::string message, std::string hint) {
  throw Error(std::move(message), std::move(hint));
}

// check(cond, ...) reads as an assertion about user-controlled input. Its message is built before the
// call, whether or not cond holds: inside a loop over data write `if (!cond) fail(...)` instead (one
// fmt::format per token cost 2 ms a training step).
inline void check(bool condition, const std::string& message, const std::string& hint) {
  if (!condition) fail(message, hint);
}

}  // namespace mm
