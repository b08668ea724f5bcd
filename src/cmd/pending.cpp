// Commands that exist in the CLI but whose implementation lands with a later issue.
#include "cmd/cli.h"
#include "cmd/commands.h"

namespace mm {


}  // namespace mm
