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

# Free space on the disk that holds the image store, for the progress lines.
free_disk() {
	df -h --output=avail "$logs" | tail -n 1 | tr -d ' '
}

extra=()
if [[ "$engine" == podman ]]; then
	# Build steps on the host's network: no bridge or CNI plugin is needed for pip.
	extra+=(--network=host --layers)
	# The host's uv cache (the wheels `make install` fetched), mounted for the
	# dependency step: what is there is copied, not downloaded again; nothing of it
	# lands in the image. RISKSERVE_IMAGE_UV_CACHE names another folder; set empty,
	# every wheel comes from the index.
	uv_cache="${RISKSERVE_IMAGE_UV_CACHE-$("$REPO/.venv/bin/uv" cache dir 2>/dev/null || true)}"
	if [[ -n "$uv_cache" ]]; then
		mkdir -p "$uv_cache"
		extra+=(--volume "$uv_cache:/uv-cache" --build-arg UV_CACHE_DIR=/uv-cache)
	fi
fi
for name in "${names[@]}"; do
	image="$prefix$name:$tag"
	log="$logs/build-$name.log"
	echo ">> building $image with $engine (log: $log; $(free_disk) free)"
	started=$SECONDS
	if ! "$ENGINE" build "${extra[@]}" -f "$name/Dockerfile" -t "$image" . >"$log" 2>&1; then
		if grep -q "no space left on device" "$log"; then
			echo "images/build.sh: building $image failed: no space left on the disk of $logs ($(free_disk) free now; the training image alone is 2.7 GB, and a build holds its layers more than once until it is committed)" >&2
		else
			echo "images/build.sh: building $image failed; the end of $log:" >&2
		fi
		tail -n 15 "$log" >&2
		exit 1
	fi
	size="$("$ENGINE" image inspect --format '{{.Size}}' "$image")"
	echo ">> built $image in $((SECONDS - started)) s, $((size / 1000000)) MB"
	# The image this tag named before, if any, is now dangling: removed, so that
	# rebuilding does not fill the disk (cached layers of the current images stay).
	# Only in the project's own podman store: a Docker engine's images are its owner's.
	if [[ "$engine" == podman ]]; then
		"$ENGINE" image prune -f >/dev/null
	fi
done
