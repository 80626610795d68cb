#!/usr/bin/env bash
# Makes the Dockerfiles' base image, docker.io/library/python:3.11-slim-bookworm, present
# in the engine's store (images/engine). In order, the first that works:
#   1. it is already there: nothing to do;
#   2. pull the real one from Docker Hub;
#   3. where no container registry is reachable: build a stand-in locally, laid out like
#      the official image (Debian bookworm, Python 3.11, python/python3/pip on
#      /usr/local/bin's PATH), with debootstrap from the Debian mirror apt uses. The root
#      filesystem is cached as a tarball in the state folder, so later runs only import.
# RISKSERVE_LOCAL_BASE=1 skips the pull; RISKSERVE_DEBIAN_MIRROR overrides the mirror.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
ENGINE="$HERE/engine"
BASE="docker.io/library/python:3.11-slim-bookworm"
state="${RISKSERVE_CONTAINERS_DIR:-$REPO/.riskserve/containers}"
cache="$state/base"
tarball="$cache/python-3.11-slim-bookworm.tar"

say() { echo ">> base image: $*"; }

if "$ENGINE" image inspect "$BASE" >/dev/null 2>&1; then
	say "$BASE is present"
	exit 0
fi
if [[ "${RISKSERVE_LOCAL_BASE:-0}" != 1 ]]; then
	say "pulling $BASE"
	if timeout 600 "$ENGINE" pull -q "$BASE" >/dev/null 2>"$state/pull.err"; then
		say "pulled $BASE"
		exit 0
	fi
	say "cannot pull it ($(tail -n 1 "$state/pull.err")); making it locally"
fi

debian_mirror() {
	if [[ -n "${RISKSERVE_DEBIAN_MIRROR:-}" ]]; then
		echo "$RISKSERVE_DEBIAN_MIRROR"
		return
	fi
	# The mirror apt uses: deb822 sources first, then the one-line format.
	local uri
	uri="$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' \
		/etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)"
	if [[ -z "$uri" ]]; then
		uri="$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
			/etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -n 1)"
	fi
	echo "${uri:-http://deb.debian.org/debian}"
}

if [[ ! -s "$tarball" ]]; then
	command -v debootstrap >/dev/null || {
		echo "images/base_image.sh: debootstrap is not installed (make image-tools)" >&2
		exit 127
	}
	mirror="$(debian_mirror)"
	mkdir -p "$cache"
	rootfs="$(mktemp -d "$cache/rootfs.XXXXXX")"
	trap 'rm -rf "$rootfs"' EXIT
	say "debootstrap bookworm from $mirror (about a minute)"
	started=$SECONDS
	debootstrap --variant=minbase \
		--include=python3.11,python3-venv,python3-pip,ca-certificates,passwd \
		bookworm "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 || {
		echo "images/base_image.sh: debootstrap failed; see $cache/debootstrap.log:" >&2
		tail -n 5 "$cache/debootstrap.log" >&2
		exit 1
	}
	# The official image's layout: python, python3 and pip on /usr/local/bin.
	ln -sf /usr/bin/python3.11 "$rootfs/usr/local/bin/python"
	ln -sf /usr/bin/python3.11 "$rootfs/usr/local/bin/python3"
	ln -sf /usr/bin/pip3 "$rootfs/usr/local/bin/pip"
	# The host's own CAs (a proxy's, a company's), so pip inside a build trusts what the
	# host trusts. pip (23.0 in bookworm) reads its own bundle unless told the system's.
	if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
		cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
		chroot "$rootfs" update-ca-certificates >/dev/null 2>&1
		printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$rootfs/etc/pip.conf"
	fi
	# What a slim image leaves out: apt's lists and caches, docs and manuals.
	rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
		"$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
		"$rootfs"/var/log/*.log "$rootfs"/var/log/apt/*
	tar --numeric-owner -C "$rootfs" -cf "$tarball.partial" .
	mv "$tarball.partial" "$tarball"
	say "root filesystem made in $((SECONDS - started)) s ($(du -h "$tarball" | cut -f1)), cached in $tarball"
fi

say "importing $tarball as $BASE"
"$ENGINE" import -q \
	--change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
	--change 'ENV LANG=C.UTF-8' \
	--change 'ENV PYTHON_VERSION=3.11' \
	--change 'LABEL org.riskserve.base=local-debootstrap' \
	--change 'CMD ["python3"]' \
	"$tarball" "$BASE" >/dev/null
say "$BASE made locally"
