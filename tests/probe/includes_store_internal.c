/*
 * A file outside core that includes core's internal store header. It must
 * NOT compile: the test internal_headers_unreachable (CMakeLists.txt) passes
 * only when the compiler reports the header missing. Never built by default.
 */
#include "cc_store_internal.h"
