#!/usr/bin/env bash
# fresh-check.sh [--purge]: does a fresh machine pass `make test`?
#
# Clones the committed HEAD of this repository into a temp dir and runs
# `make test` there with empty caches (GOMODCACHE, GOCACHE, GOPATH and
# staticcheck's XDG_CACHE_HOME in temp dirs), so a dependency that only
# this machine has (a tool installed by hand, a module already downloaded,
# a warm cache) cannot hide a missing install step, as it can in CI.
# Prints the time.
#
# --purge first removes (apt-get purge) every Debian package that `make
#   deps` installs, so deps.sh must install them again: the closest this
#   machine gets to one where they were never installed. It changes the
#   machine; it needs root.
#
# Uncommitted changes are not in the clone: commit first.
set -euo pipefail
cd "$(dirname "$0")/.."
purge=0
for a in "$@"; do
  case "$a" in
    --purge) purge=1 ;;
    *) echo "usage: $0 [--purge]" >&2; exit 2 ;;
  esac
done

if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "fresh-check: uncommitted changes are not checked (the clone has HEAD $(git rev-parse --short HEAD))"
fi

if [ $purge = 1 ]; then
  # The packages deps.sh may install, less those the base machine is
  # built on.
  mapfile -t pkgs < <(scripts/deps.sh --list-packages | grep -vxE 'git|gcc|python3')
  echo "fresh-check: purging ${pkgs[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "${pkgs[@]}" >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get autoremove -y -qq >/dev/null
fi

tmp=$(mktemp -d /tmp/angzarr-fresh-XXXXXX)
cleanup() {
  chmod -R u+w "$tmp" 2>/dev/null || true # the module cache is read-only
  rm -rf "$tmp"
}
trap cleanup EXIT
git clone -q --no-local . "$tmp/src"
mkdir -p "$tmp/gocache" "$tmp/gomodcache" "$tmp/gopath" "$tmp/xdgcache"
echo "fresh-check: make test in $tmp/src (HEAD $(git rev-parse --short HEAD)) with empty Go caches"
start=$(date +%s)
rc=0
(
  cd "$tmp/src"
  # XDG_CACHE_HOME: staticcheck keeps its own cache there.
  export GOCACHE="$tmp/gocache" GOMODCACHE="$tmp/gomodcache" GOPATH="$tmp/gopath" GOFLAGS= XDG_CACHE_HOME="$tmp/xdgcache"
  make test
) || rc=$?
secs=$(($(date +%s) - start))
printf 'fresh-check: make test %s in %dm%02ds on a fresh clone with empty Go caches\n' \
  "$([ $rc = 0 ] && echo passed || echo "FAILED (exit $rc)")" $((secs / 60)) $((secs % 60))
exit $rc
