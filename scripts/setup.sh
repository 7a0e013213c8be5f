#!/usr/bin/env bash
# Installs what kvsd needs on Debian 12, only where it is missing: Debian packages through apt-get
# (sudo when not root) and the Go modules. `setup.sh` is what building and running need (`make run`);
# `setup.sh --test` adds what only the tests need (`make test`): the brokers and S3 server the
# notification and image tests talk to, and Chromium and the npm packages of web/ for the browser
# (player) tests.
set -euo pipefail
cd "$(dirname "$0")/.."
test_deps=false
case "${1:-}" in
  "") ;;
  --test) test_deps=true ;;
  *) echo "usage: scripts/setup.sh [--test]" >&2; exit 2 ;;
esac

# Debian packages: the aws CLI v2 and GStreamer for the README's client steps (and the tests),
# ffmpeg to make media, and what cgo builds with.
declare -A need=(
  [/usr/bin/aws]=awscli
  [/usr/bin/ffmpeg]=ffmpeg
  [/usr/bin/gst-launch-1.0]=gstreamer1.0-tools
  [/usr/bin/curl]=curl
  [/usr/bin/git]=git
  [/usr/bin/gcc]=gcc
  [/usr/bin/pkg-config]=pkg-config
)
if $test_deps; then
  # Brokers the notification tests publish to; the browser the player tests drive (internal/browsertest);
  # HAProxy, the front door of the cluster tests (deploy/haproxy.cfg).
  need+=([/usr/sbin/nats-server]=nats-server [/usr/sbin/mosquitto]=mosquitto [/usr/bin/chromium]=chromium
    [/usr/sbin/haproxy]=haproxy)
fi
# GStreamer plugins have no binary to look for; check their files.
declare -A need_files=(
  [/usr/lib/x86_64-linux-gnu/gstreamer-1.0/libgstmatroska.so]=gstreamer1.0-plugins-good
  [/usr/lib/x86_64-linux-gnu/gstreamer-1.0/libgstx264.so]=gstreamer1.0-plugins-ugly
  [/usr/lib/x86_64-linux-gnu/gstreamer-1.0/libgstvideotestsrc.so]=gstreamer1.0-plugins-base
  [/usr/lib/x86_64-linux-gnu/gstreamer-1.0/libgstvideoparsersbad.so]=gstreamer1.0-plugins-bad
)
# Headers for the media package (cgo over FFmpeg 5.1 and libjpeg-turbo).
declare -A need_headers=(
  [/usr/include/x86_64-linux-gnu/libavcodec/avcodec.h]=libavcodec-dev
  [/usr/include/x86_64-linux-gnu/libavformat/avformat.h]=libavformat-dev
  [/usr/include/x86_64-linux-gnu/libavutil/avutil.h]=libavutil-dev
  [/usr/include/x86_64-linux-gnu/libswscale/swscale.h]=libswscale-dev
  [/usr/include/turbojpeg.h]=libturbojpeg0-dev
)
pkgs=()
for f in "${!need[@]}"; do [ -x "$f" ] || pkgs+=("${need[$f]}"); done
if [ "$(uname -m)" = x86_64 ]; then
  for f in "${!need_files[@]}"; do [ -e "$f" ] || pkgs+=("${need_files[$f]}"); done
  for f in "${!need_headers[@]}"; do [ -e "$f" ] || pkgs+=("${need_headers[$f]}"); done
fi
if [ ${#pkgs[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing Debian packages: ${pkgs[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi

# Go: the toolchain go.mod names is fetched by the go command itself (GOTOOLCHAIN=auto) once a
# Go of 1.21 or later is present. Debian 12's golang-go is 1.19, so look for a newer one first.
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="/usr/local/go/bin:$PATH"
fi
if ! command -v go >/dev/null 2>&1; then
  echo "setup: no Go toolchain found. Install Go 1.24 or later from https://go.dev/dl (to /usr/local/go)," >&2
  echo "       or on Debian 12: apt-get install -t bookworm-backports golang-1.23-go; then re-run." >&2
  exit 1
fi
go mod download
$test_deps || exit 0

# The players and their driver for the browser tests, pinned in web/package-lock.json. playwright-core
# drives Debian's /usr/bin/chromium and downloads no browser; no package needs an install script.
# Node 20 or later is needed (playwright-core's floor); Debian 12's nodejs is 18.
# Without it the browser tests skip themselves, except in CI (CI=true), where both fail.
node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [ "$node_major" -lt 20 ] || ! command -v npm >/dev/null 2>&1; then
  echo "setup: the browser tests need Node.js 20 or later with npm (found: $(node --version 2>/dev/null || echo none));" >&2
  echo "       install it from https://nodejs.org or NodeSource's nodejs 20 package, then re-run." >&2
  [ "${CI:-}" != true ] || exit 1
# npm ci deletes and rebuilds node_modules, which takes seconds: skip it while the lock file is
# the one it last installed from (a copy kept in node_modules).
elif ! cmp -s web/package-lock.json web/node_modules/.kvsd-installed-lock.json 2>/dev/null; then
  echo "setup: npm ci in web/ (players for the browser tests)"
  (cd web && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  cp web/package-lock.json web/node_modules/.kvsd-installed-lock.json
fi

# An S3-compatible server for the image-delivery tests (POSIX backend, SigV4 enforced).
gobin="$(go env GOPATH)/bin"
if [ ! -x "$gobin/versitygw" ]; then
  echo "setup: go install versitygw (S3 server used by the tests)"
  GOFLAGS= go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
fi

# Brokers the notification tests publish to, on their standard loopback ports.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if ! port_open 4222; then
  echo "setup: starting nats-server (JetStream) on 127.0.0.1:4222"
  mkdir -p /tmp/kvsd-nats
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /tmp/kvsd-nats -l /tmp/kvsd-nats/nats.log
fi
if ! port_open 1883; then
  echo "setup: starting mosquitto on 127.0.0.1:1883"
  mosquitto -d -c /etc/mosquitto/mosquitto.conf 2>/dev/null || mosquitto -d -p 1883
fi
for _ in $(seq 50); do port_open 4222 && port_open 1883 && break; sleep 0.2; done
