#!/usr/bin/env bash
# A local base image for docker/Dockerfile, built from Debian packages, for hosts that reach no
# container registry: Debian bookworm's Python 3.11 with venv, and the CA certificates of the
# system plus this host's own (/usr/local/share/ca-certificates), which pip trusts through
# PIP_CERT, so a build behind a TLS-inspecting proxy can install packages.
#
#   docker/base/build.sh [IMAGE]      default IMAGE: modelserve-base:bookworm
#   docker build -f docker/Dockerfile --build-arg BASE_IMAGE=modelserve-base:bookworm .
#
# Needs root, mmdebstrap and a Docker engine. The host's apt sources are used when it has
# them (/etc/apt/sources.list.d/debian.sources), else Debian's default mirror.
set -euo pipefail
image=${1:-modelserve-base:bookworm}
sources=/etc/apt/sources.list.d/debian.sources
mirror=()
if [ -f "$sources" ]; then mirror=("$sources"); fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mmdebstrap --quiet --variant=minbase \
    --include=python3,python3-venv,ca-certificates \
    --customize-hook='copy-in /usr/local/share/ca-certificates /usr/local/share' \
    --customize-hook='chroot "$1" update-ca-certificates >/dev/null' \
    bookworm "$work/rootfs.tar" "${mirror[@]}"
docker import \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    "$work/rootfs.tar" "$image" >/dev/null
echo "$image"
