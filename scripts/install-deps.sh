#!/usr/bin/env bash
# Install what building and testing souk needs on Debian bookworm.
# Idempotent: skips apt when every package is already installed.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libssl-dev nlohmann-json3-dev libzstd-dev doctest-dev zlib1g-dev libbz2-dev
  python3 brz openssh-server openssh-client
  clang libclang-rt-14-dev
  nginx fcgiwrap apache2 openssl curl zstd
  systemd man-db
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}" >&2
$sudo apt-get update -q
# The web servers are only started by the tests, on their own ports and
# configs: keep their packages from starting system-wide services (a
# policy-rc.d that refuses, unless the machine already has one).
policy=/usr/sbin/policy-rc.d
added_policy=""
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
  $sudo chmod 755 "$policy"
  added_policy=1
  trap '$sudo rm -f "$policy"' EXIT
fi
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
