#!/usr/bin/env bash
# The layout rules of src/ (STYLE.md "Layout"), checked from the source text: at most 16 entries
# at the top of src/, no #[path] in src/, no two top-level modules that import each other,
# nothing but src/cli/ and main.rs importing the CLI, and no `Result<_, String>` in library
# signatures. Prints every violation and exits 1 if there is one.
set -euo pipefail
cd "$(dirname "$0")/../src"
fail=0
say() { echo "layout: $*" >&2; fail=1; }

n=$(ls | wc -l)
[ "$n" -le 16 ] || say "src/ has $n entries (at most 16)"

if grep -rnE '^\s*#\[path' --include='*.rs' . ; then say "#[path] in src/ (make the file a folder module)"; fi

# Top-level modules: folders and root files other than lib.rs / main.rs.
mods=$(ls | sed -n 's/\.rs$//p; /\./!p' | grep -v -x -e lib -e main | sort -u)
# Which top-level modules a module's files name through `crate::X` or `use crate::{X, ..}`.
uses() {
  local m=$1 files
  if [ -d "$m" ]; then files=$(find "$m" -name '*.rs'); else files="$m.rs"; fi
  # Code only: a doc comment may name any module.
  # shellcheck disable=SC2086
  code=$(cat $files | grep -v '^\s*//')
  { grep -o 'crate::[a-z_]*' <<<"$code" | sed 's/crate:://'
    tr '\n' ' ' <<<"$code" | grep -o 'use crate::{[^}]*}' | grep -o '[{ ,][a-z_]*' | tr -d '{ ,'; } |
    sort -u | grep -x -F "$mods" | grep -v -x "$m" || true
}
declare -A edges
for m in $mods; do
  for d in $(uses "$m"); do edges["$m>$d"]=1; done
done
for k in "${!edges[@]}"; do
  a=${k%>*} b=${k#*>}
  if [[ "$a" < "$b" && -n "${edges["$b>$a"]:-}" ]]; then say "$a and $b import each other"; fi
done
# Longer loops too (a -> b -> c -> a): tsort names them on stderr.
if ! for k in "${!edges[@]}"; do echo "${k%>*} ${k#*>}"; done | tsort >/dev/null 2>&1; then
  say "the top-level modules import each other in a loop: $(for k in "${!edges[@]}"; do echo "${k%>*} ${k#*>}"; done | tsort 2>&1 >/dev/null | tr '\n' ' ')"
fi

if grep -rln 'crate::cli\b' --include='*.rs' . | grep -v '^\./cli/'; then
  say "library code imports the CLI (only src/cli/ and main.rs may)"
fi

if grep -rn 'Result<[^;{]*, String>' --include='*.rs' . | grep -v -e '/tests\.rs:' -e '^\./main\.rs:' -e '^\./cli/' | grep -E 'fn |type '; then
  say "Result<_, String> in a library signature (use crate::Error)"
fi

exit $fail
