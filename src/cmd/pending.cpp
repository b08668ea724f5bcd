// Commands that exist in the CLI but whose implementation lands with a later issue.
#include "cmd/cli.h"
#include "cmd/commands.h"

namespace mm {

int cmd_generate(int, char**) { not_built_yet("generate", "the compare/generate issue (#7)"); }

}  // namespace mm
