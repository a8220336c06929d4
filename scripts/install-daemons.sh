#!/usr/bin/env bash
# Installs the Debian packages the daemon tier runs (tests/daemons/packages.txt) that are not
# installed yet; installs nothing when all are present. Needs root and apt-get; otherwise it stops
# at once and names the packages to install by other means.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t pkgs < <(grep -v '^[[:space:]]*#' tests/daemons/packages.txt | awk 'NF { print $1 }')
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "daemon tier: all ${#pkgs[@]} Debian packages are installed"
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get > /dev/null; then
  echo "daemon tier: cannot install (needs root and apt-get); install these Debian packages: ${missing[*]}" >&2
  exit 1
fi
# The packages' own services must not start on this machine: the tier runs every daemon itself,
# inside namespaces. policy-rc.d is Debian's switch for that.
policy=/usr/sbin/policy-rc.d
created=""
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod 755 "$policy"
  created=1
fi
trap '[ -z "$created" ] || rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
echo "daemon tier: installing ${missing[*]}"
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
