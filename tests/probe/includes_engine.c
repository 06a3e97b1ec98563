/*
 * A file of server/ or tools/ (it is compiled with the include path of
 * anything linking cc_server) that includes the engine's header. It must
 * NOT compile: the test engine_header_unreachable (CMakeLists.txt) passes
 * only when the compiler finds the public headers before it and then
 * reports cc_exec.h missing, so a wrong include path cannot make it pass.
 * Never built by default.
 */
#include "cc_exec_options.h"
#include "cc_release.h"

#include "cc_exec.h"
