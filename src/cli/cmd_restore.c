#include "cli/cli.h"
/* placeholder: being written */
int cmd_restore (int argc, char **argv) { return VB_EXIT_FAIL; }
