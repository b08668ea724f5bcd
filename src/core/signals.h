// SIGINT/SIGTERM become a polite stop request: long jobs check it between steps, save, and exit 0.
#pragma once

namespace mm {

class StopRequest {
 public:
  static void install();      // installs the handlers (idempotent)
  static bool requested();
  static void reset();
};

}  // namespace mm
