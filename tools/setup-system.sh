#!/usr/bin/env bash
# Debian packages the tests and the demo use: installed with apt-get when run as root and missing.
# Elsewhere it only says what is missing; the tests that need a package skip without it.
set -euo pipefail

packages=(
  fastboot                     # the stock AOSP client: interop tests flash the simulator with it
  android-sdk-libsparse-utils  # img2simg/simg2img: our sparse images checked against AOSP's tools
  softhsm2                     # PKCS#11 HSM for tests and demos
  postgresql                   # throwaway servers for the shared-ledger tests
  xvfb xauth                   # a display for console screenshots
  libusb-1.0-0                 # pyusb's backend on real hardware
  libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3  # Qt's offscreen platform
  libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-xinerama0
  libxcb-randr0 libxcb-shape0 libxcb-xkb1 libxkbcommon-x11-0   # Qt's xcb platform under Xvfb
  fonts-wqy-microhei           # Chinese text in the console
  poppler-utils                # pdftoppm: report and label PDFs looked at as pages in the tests
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "Not root or no apt-get: install these Debian packages yourself: ${missing[*]}" >&2
fi
