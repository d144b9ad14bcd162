#!/bin/sh
# deps.sh PKG... - install the Debian packages that are missing.
# As root: apt-get installs them.  Otherwise: print the command and fail.
missing=""
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
    missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "deps: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $missing >/dev/null ||
    { echo "deps: apt-get install$missing failed" >&2; exit 1; }
else
  echo "deps: missing Debian packages:$missing" >&2
  echo "deps: run: sudo apt-get install -y$missing" >&2
  exit 1
fi
