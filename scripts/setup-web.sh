#!/usr/bin/env bash
# Installs the tools the browser package needs, idempotently (quick when present):
#   * wasm-bindgen-cli at exactly the version crates/uniml-web pins, into $HOME/.cache/uniml-tools
#   * the pinned npm dev tools of web/package.json (npm ci: typescript, esbuild, vite,
#     playwright-core, binaryen for wasm-opt)
#   * Debian's chromium (for the Playwright tests) and chromium-driver (chromedriver, for the
#     wasm-bindgen-test suites in headless Chromium), via apt
#   * the rustup target wasm32-unknown-unknown and the rust-src component (the threaded wasm
#     build compiles std with atomics: -Z build-std)
# Prints the wasm-bindgen binary path on its last line of stdout.
#   SKIP_CHROMIUM=1 skips the browser (build only).
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "setup-web: $*" >&2; }

# --- wasm-bindgen-cli, the exact version of the wasm-bindgen crate
WB_VERSION=$(sed -n 's/^wasm-bindgen = { version = "=\([0-9.]*\)".*/\1/p' crates/uniml-web/Cargo.toml)
[ -n "$WB_VERSION" ] || { log "cannot read the wasm-bindgen version from crates/uniml-web/Cargo.toml"; exit 1; }
TOOLS="${UNIML_TOOLS:-$HOME/.cache/uniml-tools}"
WB="$TOOLS/bin/wasm-bindgen"
if [ -x "$WB" ] && [ "$("$WB" --version 2>/dev/null)" = "wasm-bindgen $WB_VERSION" ]; then
  log "wasm-bindgen $WB_VERSION present"
else
  log "installing wasm-bindgen-cli $WB_VERSION into $TOOLS (a few minutes, once)"
  start=$(date +%s)
  # --locked pins the CLI's whole dependency tree; if a locked crate is missing from the
  # registry mirror (seen: webpki-roots 1.0.11), resolve afresh at the same CLI version.
  if ! cargo install wasm-bindgen-cli --version "=$WB_VERSION" --locked --root "$TOOLS" >&2; then
    log "the --locked install failed; retrying without --locked (same wasm-bindgen-cli version)"
    cargo install wasm-bindgen-cli --version "=$WB_VERSION" --root "$TOOLS" >&2
  fi
  log "wasm-bindgen-cli installed in $(( $(date +%s) - start )) s"
fi

# --- rustup target, and std's sources for the threaded build (-Z build-std)
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown >&2
fi
if command -v rustup >/dev/null && ! rustup component list --installed | grep -q '^rust-src'; then
  rustup component add rust-src >&2
fi

# --- npm dev tools (pinned by web/package-lock.json)
if [ -f web/node_modules/.package-lock.json ] && ! [ web/package-lock.json -nt web/node_modules/.package-lock.json ] \
   && [ -x web/node_modules/.bin/wasm-opt ] && [ -x web/node_modules/.bin/esbuild ]; then
  log "npm tools present"
else
  log "npm ci in web/"
  start=$(date +%s)
  (cd web && npm ci --no-audit --no-fund >&2)
  log "npm ci took $(( $(date +%s) - start )) s"
fi

# --- chromium (Debian package) for the browser tests, and chromedriver (Debian's chromium-driver,
# the same version) for the wasm-bindgen-test suites in headless Chromium
if [ "${SKIP_CHROMIUM:-0}" != 1 ]; then
  if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    log "chromium present ($(chromium --version 2>/dev/null | head -1)), $(chromedriver --version 2>/dev/null | head -1)"
  else
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    start=$(date +%s)
    if ! apt-cache show chromium >/dev/null 2>&1 || ! apt-cache show chromium-driver >/dev/null 2>&1; then
      log "apt-get update"
      $SUDO apt-get update -qq >&2
    fi
    log "apt-get install chromium chromium-driver"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-liberation >&2
    log "chromium and chromedriver installed in $(( $(date +%s) - start )) s"
  fi
fi
echo "$WB"
