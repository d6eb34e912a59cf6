#!/usr/bin/env bash
# Brings UPS's legacy XOLTWS (SOAP) schemas into target/legacy-xsd/ for
# scripts/gen-legacy-tables.py and for validating our answers with xmllint.
#
# The schemas are UPS copyright and are not committed: they come out of pinned
# registry packages that ship them (checked against the sha256 below):
#   PyPI python-ups 0.0.4   ups/wsdl/    Rate v1.1 (RateWebServiceSchema.xsd, RateWS.wsdl)
#   npm  ups-nodejs-sdk 1.0.0 lib/wsdl/  Pickup v1.1 (PickupWebServiceSchema.xsd, Pickup.wsdl),
#                                        common.xsd, Error1.1.xsd, UPSSecurity.xsd, IFWS.xsd
# Ship, Void, Track, TimeInTransit and XAV schemas, and the old XML API schemas, are in no
# registry package we know of. Whoever has them (e.g. UPS's developer kit) can point
# LEGACY_XSD_DIR at a folder holding them: its *.xsd / *.wsdl files (searched recursively)
# are copied in after the packages' ones and win over them; files whose root element has no
# XOLTWS targetNamespace go to oldxml/. Files are copied byte-identical, flattened into one
# folder per kind, so their relative schemaLocation imports resolve.
#
# Installs xmllint (Debian's libxml2-utils) if it is missing. Idempotent; prints one line.
# Then run: python3 scripts/gen-legacy-tables.py  (writes src/dialect/tables/legacy_schema.json
# and target/legacy-xsd/index.json).
set -euo pipefail
cd "$(dirname "$0")/.."

PY_PKG=python-ups PY_VER=0.0.4
PY_SHA256=f2b5ff8aad92ec93c685a2057613e884590719c064032dfe31542b845d666fb2
NPM_PKG=ups-nodejs-sdk NPM_VER=1.0.0
NPM_SHA256=8a77789c3f82ec2632d4fcc9cfcfd4b482df2d6fc540b06f58f79185eee0813d

out=target/legacy-xsd
cache=target/legacy-xsd-cache
stamp="$PY_PKG==$PY_VER $PY_SHA256 $NPM_PKG@$NPM_VER $NPM_SHA256 extra=${LEGACY_XSD_DIR:-}"

need=()
command -v xmllint >/dev/null 2>&1 || need+=(libxml2-utils)
command -v python3 >/dev/null 2>&1 || need+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null 2>&1
fi

if [ -z "${LEGACY_XSD_DIR:-}" ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ] \
  && [ -f "$out/soap/RateWebServiceSchema.xsd" ]; then
  echo "legacy-xsd: up to date in $out"
  exit 0
fi

mkdir -p "$cache"
py_tar="$cache/$PY_PKG-$PY_VER.tar.gz"
npm_tgz="$cache/$NPM_PKG-$NPM_VER.tgz"
if ! echo "$PY_SHA256  $py_tar" | sha256sum -c --status 2>/dev/null; then
  tmp=$(mktemp -d)
  # Source distribution only (the package never had a wheel); nothing is installed.
  python3 -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
    -d "$tmp" "$PY_PKG==$PY_VER" >/dev/null 2>&1
  mv "$tmp/$PY_PKG-$PY_VER.tar.gz" "$py_tar"
  rm -rf "$tmp"
fi
if ! echo "$NPM_SHA256  $npm_tgz" | sha256sum -c --status 2>/dev/null; then
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent --ignore-scripts "$NPM_PKG@$NPM_VER" >/dev/null 2>&1)
  mv "$tmp/$NPM_PKG-$NPM_VER.tgz" "$npm_tgz"
  rm -rf "$tmp"
fi
echo "$PY_SHA256  $py_tar" | sha256sum -c --status || { echo "legacy-xsd: $py_tar: sha256 mismatch" >&2; exit 1; }
echo "$NPM_SHA256  $npm_tgz" | sha256sum -c --status || { echo "legacy-xsd: $npm_tgz: sha256 mismatch" >&2; exit 1; }

rm -rf "$out"
mkdir -p "$out/soap"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar xzf "$py_tar" -C "$work" "$PY_PKG-$PY_VER/ups/wsdl"
tar xzf "$npm_tgz" -C "$work" package/lib/wsdl
py="$work/$PY_PKG-$PY_VER/ups/wsdl"
nw="$work/package/lib/wsdl"
# python-ups: Rate only. Its common.xsd is older (RequestType has no SubVersion), so the
# shared files come from ups-nodejs-sdk; Error1.1.xsd and UPSSecurity.xsd are byte-identical
# in both. IFWS.xsd (international forms, imported by the Ship schema) is the one that
# ups-nodejs-sdk ships beside FreightShip; the freight services themselves are not copied.
cp "$py/RateWebServiceSchema.xsd" "$py/RateWS.wsdl" "$out/soap/"
cp "$nw/pickup/PickupWebServiceSchema.xsd" "$nw/pickup/Pickup.wsdl" \
   "$nw/pickup/common.xsd" "$nw/pickup/Error1.1.xsd" "$nw/pickup/UPSSecurity.xsd" "$out/soap/"
cp "$nw/freight_shipping/IFWS.xsd" "$out/soap/"
source_text="PyPI python-ups $PY_VER (Rate v1.1); npm ups-nodejs-sdk $NPM_VER (Pickup v1.1, common, Error1.1, UPSSecurity, IFWS)"

if [ -n "${LEGACY_XSD_DIR:-}" ]; then
  n=0
  while IFS= read -r -d '' f; do
    if head -c 4096 "$f" | grep -q 'XMLSchema/XOLTWS/\|WSDL/XOLTWS/'; then
      cp "$f" "$out/soap/"
    else
      mkdir -p "$out/oldxml"
      cp "$f" "$out/oldxml/"
    fi
    n=$((n + 1))
  done < <(find "$LEGACY_XSD_DIR" -type f \( -iname '*.xsd' -o -iname '*.wsdl' \) -print0 | sort -z)
  source_text="$source_text; plus $n files from LEGACY_XSD_DIR"
fi
printf '%s\n' "$source_text" >"$out/SOURCE"
python3 scripts/gen-legacy-tables.py --index-only >/dev/null
echo "$stamp" >"$out/.stamp"
echo "legacy-xsd: $(find "$out" -name '*.xsd' | wc -l) schemas in $out (xmllint $(xmllint --version 2>&1 | head -1 | awk '{print $NF}'))"
