#!/usr/bin/env bash
# Builds the riskserve images from the repository root with images/engine (docker where
# a Docker engine answers, podman otherwise), after making their base present
# (images/base_image.sh). The Dockerfiles are built as they are.
#   images/build.sh [serving] [app] [transformer] [training]
#     (default: all four, training last)
# Tags: ${RISKSERVE_IMAGE_PREFIX:-ghcr.io/riskserve/riskserve-}<name>:${RISKSERVE_IMAGE_TAG:-<version>},
# the version from pyproject.toml (the chart's appVersion).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
ENGINE="$HERE/engine"
cd "$REPO"

names=("$@")
[[ ${#names[@]} -gt 0 ]] || names=(serving app transformer training)
for name in "${names[@]}"; do
	[[ -f "$name/Dockerfile" ]] || {
		echo "images/build.sh: no image named '$name' (serving, app, transformer, training)" >&2
		exit 2
	}
done
version="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)"
prefix="${RISKSERVE_IMAGE_PREFIX:-ghcr.io/riskserve/riskserve-}"
tag="${RISKSERVE_IMAGE_TAG:-$version}"
engine="$("$ENGINE" --which)"
logs="${RISKSERVE_CONTAINERS_DIR:-$REPO/.riskserve/containers}"
mkdir -p "$logs"

"$HERE/base_image.sh"

extra=()
if [[ "$engine" == podman ]]; then
	# Build steps on the host's network: no bridge or CNI plugin is needed for pip.
	extra+=(--network=host --layers)
fi
for name in "${names[@]}"; do
	image="$prefix$name:$tag"
	log="$logs/build-$name.log"
	echo ">> building $image with $engine (log: $log)"
	started=$SECONDS
	if ! "$ENGINE" build "${extra[@]}" -f "$name/Dockerfile" -t "$image" . >"$log" 2>&1; then
		echo "images/build.sh: building $image failed; the end of $log:" >&2
		tail -n 15 "$log" >&2
		exit 1
	fi
	size="$("$ENGINE" image inspect --format '{{.Size}}' "$image")"
	echo ">> built $image in $((SECONDS - started)) s, $((size / 1000000)) MB"
done
