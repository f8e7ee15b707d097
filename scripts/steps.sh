#!/usr/bin/env bash
# steps.sh STEP...: runs `make STEP` for each step in turn, prints how long
# each took as it ends, stops at the first that fails, and closes with a
# table of every step's time. `make test` runs its steps through it, so a
# slow or failing step is named with its time.
set -uo pipefail
cd "$(dirname "$0")/.."
declare -a rows=()
total_start=$(date +%s)
fmt() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }
summary() {
  echo "== make test: step times"
  for r in "${rows[@]}"; do echo "   $r"; done
  echo "   total $(fmt $(($(date +%s) - total_start)))"
}
for step in "$@"; do
  echo "== $step"
  start=$(date +%s)
  ${MAKE:-make} --no-print-directory "$step"
  rc=$?
  secs=$(($(date +%s) - start))
  if [ $rc -ne 0 ]; then
    rows+=("$(printf '%-12s %s  FAILED (exit %d)' "$step" "$(fmt $secs)" $rc)")
    echo "== $step failed after $(fmt $secs)"
    summary
    exit $rc
  fi
  rows+=("$(printf '%-12s %s' "$step" "$(fmt $secs)")")
  echo "== $step took $(fmt $secs)"
done
summary
