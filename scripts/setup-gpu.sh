#!/usr/bin/env bash
# Makes a Vulkan adapter available for the GPU tests: on a machine without a
# GPU that is Mesa's lavapipe (software Vulkan, "llvmpipe"). Idempotent and
# quick when already installed. Debian/Ubuntu only; elsewhere install your
# GPU's Vulkan driver and loader yourself.
set -euo pipefail

have() { ls /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1 && ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; }

if have; then
    echo "setup-gpu: Vulkan loader and ICDs present: $(ls /usr/share/vulkan/icd.d/ | tr '\n' ' ')"
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "setup-gpu: no apt-get; install a Vulkan driver and libvulkan1 by hand" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y --no-install-recommends mesa-vulkan-drivers libvulkan1; then
    $SUDO apt-get update
    $SUDO apt-get install -y --no-install-recommends mesa-vulkan-drivers libvulkan1
fi
have || { echo "setup-gpu: Vulkan ICDs still missing after install" >&2; exit 1; }
echo "setup-gpu: installed: $(ls /usr/share/vulkan/icd.d/ | tr '\n' ' ')"
