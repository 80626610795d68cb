#!/usr/bin/env bash
# A release tag (vX.Y.Z) must name the version everything else carries: the chart's
# version and appVersion (the images' tag) and the package's version.
#   images/check_release_version.sh v0.1.0
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tag="${1:?usage: images/check_release_version.sh vX.Y.Z}"
want="${tag#v}"
chart="$(sed -n 's/^version:[[:space:]]*"\{0,1\}\([^"]*\)"\{0,1\}[[:space:]]*$/\1/p' helm/riskserve/Chart.yaml)"
app="$(sed -n 's/^appVersion:[[:space:]]*"\{0,1\}\([^"]*\)"\{0,1\}[[:space:]]*$/\1/p' helm/riskserve/Chart.yaml)"
package="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)"
wrong=()
[[ "$chart" == "$want" ]] || wrong+=("the chart's version is $chart")
[[ "$app" == "$want" ]] || wrong+=("the chart's appVersion is $app")
[[ "$package" == "$want" ]] || wrong+=("pyproject.toml's version is $package")
if [[ ${#wrong[@]} -gt 0 ]]; then
	echo "release $tag: $(IFS=';'; echo "${wrong[*]}" | sed 's/;/; /g') (all must be $want)" >&2
	exit 1
fi
echo "release $tag: chart $chart, appVersion $app, package $package"
