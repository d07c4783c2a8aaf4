#!/usr/bin/env bash
# Installs everything releng's quick start and tests need on a fresh Debian machine:
# Debian packages (when a program is missing) and the npm dependencies (npm ci).
set -euo pipefail
cd "$(dirname "$0")/.."

# program -> Debian package
declare -A need=(
  [nix-build]=nix-bin [skopeo]=skopeo [docker-registry]=docker-registry [xz]=xz-utils
  [zstd]=zstd [git]=git [rclone]=rclone [openssl]=openssl [htpasswd]=apache2-utils [curl]=curl [flock]=util-linux
  [zsh]=zsh [fish]=fish [script]=bsdutils
  [rsync]=rsync [gpg]=gnupg [dpkg-deb]=dpkg [apt-ftparchive]=apt-utils [uuidgen]=uuid-runtime [bc]=bc
  # Ceph RADOS Gateway: the faithful S3 of the tests (test/helpers/rgw.ts); installed without recommends
  [radosgw]=radosgw [ceph-mon]=ceph-mon [ceph-osd]=ceph-osd
)
missing=()
for prog in "${!need[@]}"; do command -v "$prog" >/dev/null 2>&1 || missing+=("${need[$prog]}"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "releng setup: missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install -y ${missing[*]})" >&2
    exit 1
  fi
  echo "releng setup: installing ${missing[*]}" >&2
  # Other jobs on the machine may hold the dpkg lock: wait for it instead of failing.
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "releng setup: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi
