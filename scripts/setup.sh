#!/usr/bin/env bash
# setup.sh - install the Debian packages w8a8 builds and tests with.
# Idempotent: does nothing when everything is already installed.
set -eu
PKGS="gcc make libc6-dev libjansson-dev libonig-dev libutf8proc-dev libmicrohttpd-dev
      libcurl4-openssl-dev curl clang libclang-rt-14-dev libomp-14-dev"
missing=""
for p in $PKGS; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "setup: installing$missing"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
echo "setup: all packages present"
