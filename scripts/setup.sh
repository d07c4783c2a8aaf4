#!/usr/bin/env bash
# Installs everything releng's quick start and tests need on a fresh Debian machine, then checks
# that it works: Debian packages (when a program or Nix's build users are missing), the npm
# dependencies (npm ci), the bundle bin/releng runs (npm run build), and a self-check (a trivial
# nix-build, skopeo, docker-registry starting). Any failure names the package or setting to fix.
set -euo pipefail
cd "$(dirname "$0")/.."

# program -> Debian package
declare -A need=(
  [nix-build]=nix-bin [skopeo]=skopeo [docker-registry]=docker-registry [xz]=xz-utils
  [zstd]=zstd [git]=git [rclone]=rclone [openssl]=openssl [htpasswd]=apache2-utils [curl]=curl [flock]=util-linux
  [zsh]=zsh [fish]=fish [script]=bsdutils
  [rsync]=rsync [gpg]=gnupg [dpkg-deb]=dpkg [apt-ftparchive]=apt-utils [apt-file]=apt-file [uuidgen]=uuid-runtime [bc]=bc
  [ssh-keygen]=openssh-client
  # programs.sqlite tests (issue 27): command-not-found's query in the real sqlite3; ELF debug files with build ids
  [sqlite3]=sqlite3 [gcc]=gcc [readelf]=binutils [objcopy]=binutils
  # A BitTorrent client that runs headless: the torrent tests download from web seeds alone (issue 28)
  [aria2c]=aria2
  # Ceph RADOS Gateway: the faithful S3 of the tests (test/helpers/rgw.ts); installed without recommends
  [radosgw]=radosgw [ceph-mon]=ceph-mon [ceph-osd]=ceph-osd
)
missing=()
for prog in "${!need[@]}"; do command -v "$prog" >/dev/null 2>&1 || missing+=("${need[$prog]}"); done
# Nix as root builds as the members of group nixbld (Nix's default `build-users-group`). Debian's
# nix-bin only recommends the package that creates them, nix-setup-systemd (group nixbld, users
# nixbld1..10, /etc/nix/nix.conf; its nix-daemon units start only where systemd runs). We install it
# rather than set `build-users-group =`: then Nix builds in any shell on this machine, not only in
# ours, and builds run as unprivileged users as Debian intends.
getent group nixbld >/dev/null 2>&1 || missing+=(nix-setup-systemd)
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

# The bundle (dist/lib/releng.mjs) is what bin/releng runs, as the Nix package ships it.
node scripts/build.mjs >/dev/null

# Self-check: each failure says what is wrong and what to do.
fail() { echo "releng setup: $*" >&2; exit 1; }
. scripts/env.sh
if ! getent group nixbld >/dev/null 2>&1; then
  fail "Nix has no build users: group nixbld does not exist (install Debian's nix-setup-systemd, or set build-users-group = in /etc/nix/nix.conf)"
fi
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
if ! out=$(nix-build --no-out-link -E 'derivation { name = "releng-setup-probe"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo ok > $out" ]; }' 2>&1); then
  fail "nix-build cannot build a trivial derivation (package nix-bin; is /nix/store writable by $(id -un)? sandbox off?):
$out"
fi
skopeo --version >/dev/null 2>&1 || fail "skopeo --version failed (package skopeo)"
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
cat > "$probe/registry.yml" <<YML
version: 0.1
storage: { filesystem: { rootdirectory: $probe/registry } }
http: { addr: 127.0.0.1:$port }
YML
docker-registry serve "$probe/registry.yml" >"$probe/registry.log" 2>&1 &
registry=$!
up=
for _ in $(seq 1 50); do
  if curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1; then up=1; break; fi
  kill -0 "$registry" 2>/dev/null || break
  sleep 0.1
done
kill "$registry" 2>/dev/null || true
wait "$registry" 2>/dev/null || true
[ -n "$up" ] || fail "docker-registry did not answer on 127.0.0.1:$port (package docker-registry):
$(cat "$probe/registry.log")"
