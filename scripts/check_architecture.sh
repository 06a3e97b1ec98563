#!/usr/bin/env bash
# The module map of docs/architecture.md against the tree, run as a test:
#   check_architecture.sh SOURCE_DIR
#  1. Every public header cc_NAME.h (or cc_NAME.h.in) of a layer folder has a
#     row "| `cc_NAME` |" in the map, and every row names a header that exists.
#  2. Every .c file of a layer folder belongs to a module by its name:
#     cc_NAME.c or cc_NAME_PART.c beside cc_NAME.h (server ops are
#     cc_op_NAME.c of cc_op).
#  3. A module internal to its layer has its header in the layer's internal/
#     folder, internal/cc_NAME.h, where no public header is a prefix of NAME
#     (internal/cc_gen_persons.h is a part's header of cc_gen, not a
#     module). It has its row like any module, and the row says where the
#     header is ("internal/cc_NAME.h"), so the map shows that no other layer
#     can include it.
# Must never: pass when the map and the tree disagree.
set -u
src="$1"
doc="$src/docs/architecture.md"
layers=(core queries server gen)
status=0
fail() { echo "architecture: $*"; status=1; }

[ -r "$doc" ] || { echo "architecture: $doc missing"; exit 1; }
mapped=$(sed -n '/^## Module map/,/^## Where/p' "$doc" | sed -n 's/^| `\(cc_[a-z0-9_]*\)` |.*/\1/p' | sort -u)

declare -A headers=()
for dir in "${layers[@]}"; do
  for h in "$src/$dir"/cc_*.h "$src/$dir"/cc_*.h.in; do
    [ -e "$h" ] || continue
    name=${h##*/}; name=${name%.in}; name=${name%.h}
    case $name in *_internal) fail "$dir/$name.h: an internal header belongs in $dir/internal/"; continue ;; esac
    headers[$name]=$dir
    grep -qx "$name" <<<"$mapped" || fail "$dir/$name.h has no row in the module map of docs/architecture.md"
  done
done
# Internal modules (3): checked after every public header is known.
for dir in "${layers[@]}"; do
  for h in "$src/$dir"/internal/cc_*.h; do
    [ -e "$h" ] || continue
    name=${h##*/}; name=${name%.h}
    case $name in *_internal) continue ;; esac
    probe=$name part_of=""
    while :; do
      if [ -n "${headers[$probe]:-}" ]; then part_of=$probe; break; fi
      case $probe in *_*) probe=${probe%_*} ;; *) break ;; esac
    done
    [ -n "$part_of" ] && continue
    headers[$name]=$dir
    if ! grep -qx "$name" <<<"$mapped"; then
      fail "$dir/internal/$name.h has no row in the module map of docs/architecture.md"
    elif ! sed -n '/^## Module map/,/^## Where/p' "$doc" | grep "^| \`$name\` |" |
           grep -qF "internal/$name.h"; then
      fail "the row of $name in docs/architecture.md does not say its header is internal/$name.h"
    fi
  done
done
for name in $mapped; do
  [ -n "${headers[$name]:-}" ] || fail "docs/architecture.md maps $name, but no layer has $name.h"
done

for dir in "${layers[@]}"; do
  for c in "$src/$dir"/*.c; do
    [ -e "$c" ] || continue
    stem=${c##*/}; stem=${stem%.c}
    owner=""
    probe=$stem
    while :; do
      if [ -n "${headers[$probe]:-}" ]; then owner=$probe; break; fi
      case $probe in *_*) probe=${probe%_*} ;; *) break ;; esac
    done
    [ -n "$owner" ] || fail "$dir/$stem.c belongs to no module (no cc_NAME.h for any prefix of its name)"
  done
done
[ $status -eq 0 ] && echo "architecture: ok (${#headers[@]} modules)"
exit $status
