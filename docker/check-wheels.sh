#!/usr/bin/env bash
# requirements.txt resolves to wheels only, for the image's Python on linux/arm64 (Oracle Cloud Ampere A1)
# and linux/amd64: the multi-arch build (docker/Dockerfile, pip --only-binary) needs no compiler.
# The image is Debian bookworm (glibc 2.36): any manylinux_2_x wheel with x <= 36 runs there; pip
# does not expand a manylinux_2_36 tag downwards, so every one is listed.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=${PIP:-.venv/bin/pip}
PYTHON_VERSION=${PYTHON_VERSION:-3.11}
REQUIREMENTS=${REQUIREMENTS:-requirements.txt}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for arch in aarch64 x86_64; do
  platforms=(--platform "manylinux2014_$arch")
  for minor in $(seq 17 36); do platforms+=(--platform "manylinux_2_${minor}_$arch"); done
  if ! "$PIP" download -q --disable-pip-version-check --only-binary=:all: "${platforms[@]}" \
      --python-version "$PYTHON_VERSION" --implementation cp -r "$REQUIREMENTS" -d "$work/$arch" > "$work/log" 2>&1; then
    grep -v "^WARNING: Location" "$work/log" >&2
    echo "$REQUIREMENTS: some package has no wheel for manylinux $arch, cp${PYTHON_VERSION/./}" >&2
    exit 1
  fi
  echo "$REQUIREMENTS: $(ls "$work/$arch" | wc -l) wheels for manylinux $arch, cp${PYTHON_VERSION/./}"
done
