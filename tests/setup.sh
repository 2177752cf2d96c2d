#!/usr/bin/env bash
# Installs what the test suite uses as real peers: dig and kdig (clients),
# NSD and Knot (authoritative servers), Unbound (a reference resolver, and
# the DNS-over-TLS server of tests/forward_tls.rs), openssl (its test CA),
# dnsperf (load), ldnsutils (ldns-keygen and ldns-signzone sign zones for
# the DNSSEC tests), Prometheus and promtool (metrics checks), iproute2/util-linux
# (namespaces for the glibc test), systemd (systemd-analyze), Chromium (renders
# the HTML trace headless), redis-server and redis-tools (the fleet's shared
# cache, tests/shared_cache.rs, bench/fleet.sh), and cargo-deb
# (the package test builds the .deb). Idempotent.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
PKGS=(dnsutils knot-dnsutils nsd knot unbound openssl dnsperf ldnsutils prometheus iproute2 util-linux systemd chromium redis-server redis-tools)
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts these daemons on install; the tests run their own instances on loopback.
for svc in nsd knot unbound prometheus; do
  $SUDO systemctl stop "$svc" >/dev/null 2>&1 || true
  $SUDO pkill -x "$svc" >/dev/null 2>&1 || true
done
# The packaged Redis on port 6379 is not used (the tests start their own on
# free loopback ports); stopped by its service, never by name, since tests
# of other checkouts may be running their own redis-server.
$SUDO systemctl stop redis-server >/dev/null 2>&1 || $SUDO service redis-server stop >/dev/null 2>&1 || true
if ! cargo deb --version >/dev/null 2>&1; then
  cargo install cargo-deb --locked --quiet
fi
echo "test peers installed: ${PKGS[*]} cargo-deb"
