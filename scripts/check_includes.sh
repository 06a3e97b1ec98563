#!/usr/bin/env bash
# Include hygiene, run as a test: check_includes.sh SOURCE_DIR LAYER_DIR...
#  1. No header includes <sqlite3.h>: SQLite is an implementation detail of
#     core's SQLite modules (cc_db, cc_optout, cc_ingest), so only their .c
#     files include it; headers name a connection through the forward
#     declaration `typedef struct sqlite3 sqlite3;`. tests/support/ is not
#     checked: the tests' SQL oracle (cc_fixture) is SQLite by design.
#  2. Every internal header (cc_*_internal.h) of a layer lives in the
#     layer's internal/ folder, which only that layer's own files can
#     include (see cc_layer in CMakeLists.txt).
set -u
src="$1"
shift
status=0
while IFS= read -r hit; do
  echo "include hygiene: $hit: a header must not include <sqlite3.h> (forward-declare struct sqlite3)"
  status=1
done < <(cd "$src" && grep -rlE '^\s*#\s*include\s*<sqlite3\.h>' --include='*.h' \
           core queries server gen tools bench 2>/dev/null)
for dir in "$@"; do
  for header in "$src/$dir"/cc_*_internal.h; do
    [ -e "$header" ] || continue
    echo "include hygiene: $dir/${header##*/} is reachable from other layers: move it to $dir/internal/"
    status=1
  done
done
[ $status -eq 0 ] && echo "include hygiene: ok ($# layers)"
exit $status
