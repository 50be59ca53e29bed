#!/usr/bin/env bash
# Debian packages the tests need: GStreamer's RTSP server (a real RTSP camera on loopback),
# driven by the system Python's GObject bindings, and Chromium for the labeller's browser test
# (driven by the `playwright` package; never `playwright install`), a Mosquitto broker for the MQTT
# event tests, Prometheus for `promtool check metrics`, and FFmpeg (the media corpus the format
# tests encode, and the HLS, UDP, RTMP and HTTP servers of the live protocol tests). Installs only what is missing.
set -euo pipefail
packages=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
          gstreamer1.0-plugins-ugly chromium mosquitto prometheus ffmpeg)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing Debian packages: ${missing[*]}"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
