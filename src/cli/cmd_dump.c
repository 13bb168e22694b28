#include "cli/cli.h"
/* placeholder: being written */
int cmd_dump (int argc, char **argv) { return VB_EXIT_FAIL; }
