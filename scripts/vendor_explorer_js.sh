#!/bin/sh
# Vendor the chart libraries of the static explorer (book/_static/explorer/vendor/) from npm, pinned.
# Usage: sh scripts/vendor_explorer_js.sh   (needs npm and the registry; the book itself then needs no network)
# Copies each package's minified browser (UMD) build and its licence. The `//# sourceMappingURL=` comments are
# removed, because the packages do not all ship the maps they name (a browser would log a failed request).
set -eu
VERSIONS="vega@6.4.0 vega-lite@6.5.0 vega-embed@7.3.0"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST="$ROOT/book/_static/explorer/vendor"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$DEST"
cd "$TMP"
for spec in $VERSIONS; do
  name=${spec%@*}
  npm pack --silent "$spec" >/dev/null
  mkdir "$name" && tar xzf "$name"-*.tgz -C "$name"
  sed '/^\/\/# sourceMappingURL=/d' "$name/package/build/$name.min.js" > "$DEST/$name.min.js"
  cp "$name/package/LICENSE" "$DEST/LICENSE-$name.txt"
done
cd "$DEST"
{
  echo "# Vendored chart libraries of the static explorer"
  echo
  echo "Written by scripts/vendor_explorer_js.sh from npm: $VERSIONS (all BSD-3-Clause; licences alongside)."
  echo "The minified builds bundle their own dependencies (d3 modules, ISC; vega-themes, vega-tooltip and"
  echo "vega-interpreter, BSD-3-Clause; fast-json-patch and json-stringify-pretty-compact, MIT; semver, ISC;"
  echo "tslib, 0BSD). Source-map comments are stripped. SHA-256 of the files here:"
  echo
  sha256sum ./*.min.js | sed 's/^/    /'
} > README.md
echo "vendored into $DEST"
