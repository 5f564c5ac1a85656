#!/usr/bin/env bash
# Packaging check, run on demand (not in the default tests: the bundle is ~4 GB and takes
# minutes to build):  packaging/check.sh [--no-build]
#
# 1. builds the bundle and the tarball (packaging/build.sh), unless --no-build;
# 2. unpacks the tarball into a fresh folder under /tmp and, from there, with an empty
#    environment (env -i, cwd /tmp, HOME a new folder: nothing can see the source tree or .venv):
#    times `workbench --help`, lists the plugins, runs `workbench --selftest` (must exit 0);
# 3. under Xvfb (if installed), opens the desktop window through Qt's xcb platform plugin,
#    times how long until the window is mapped and saves a screenshot of the screen
#    (needs xvfb, x11-utils and imagemagick).
# Figures and the screenshot land in $CHECK_OUT (default build/package-check/).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
[ "${1:-}" = "--no-build" ] || packaging/build.sh
tarball=$(ls -t dist/distillation-workbench-*.tar.gz | head -1)
out=${CHECK_OUT:-$repo/build/package-check}
mkdir -p "$out"
work=$(mktemp -d /tmp/workbench-package-check.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/home"
echo "unpacking $tarball ($(du -h "$tarball" | cut -f1)) into $work"
tar -C "$work" -xzf "$tarball"
app="$work/distillation-workbench/workbench"
clean_env=(env -i "HOME=$work/home" "PATH=/usr/bin:/bin" "LANG=C.UTF-8" "OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}")
cd /tmp

seconds() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N); echo "$t1 - $t0" | bc; }
first=$(seconds "${clean_env[@]}" "$app" --help)
warm=$(seconds "${clean_env[@]}" "$app" --help)
echo "workbench --help: ${first} s first (cold cache), ${warm} s again" | tee "$out/figures.txt"
"${clean_env[@]}" "$app" plugins | tee "$out/plugins.txt"

echo "== workbench --selftest (from the unpacked copy, empty environment)"
t0=$(date +%s)
if ! "${clean_env[@]}" "$app" --selftest 2>&1 | tee "$out/selftest.txt"; then :; fi
status=${PIPESTATUS[0]}
echo "selftest exit code $status in $(($(date +%s) - t0)) s" | tee -a "$out/figures.txt"

if command -v Xvfb >/dev/null && command -v xwininfo >/dev/null; then
  display=:$((90 + RANDOM % 100))
  Xvfb "$display" -screen 0 1400x900x24 -nolisten tcp >/dev/null 2>&1 &
  xvfb=$!
  sleep 1
  t0=$(date +%s.%N)
  "${clean_env[@]}" "DISPLAY=$display" "WORKBENCH_HOME=$work/home/gui" "$app" >"$out/gui.log" 2>&1 &
  gui=$!
  shown=""
  for _ in $(seq 1 600); do
    if DISPLAY=$display xwininfo -root -tree 2>/dev/null | grep -q '"Distillation Workbench"'; then
      shown=$(echo "$(date +%s.%N) - $t0" | bc); break
    fi
    kill -0 "$gui" 2>/dev/null || break
    sleep 0.1
  done
  echo "window shown (xcb under Xvfb) after: ${shown:-NEVER} s" | tee -a "$out/figures.txt"
  sleep 3  # let it paint
  DISPLAY=$display convert x:root "$out/gui-xvfb.png" 2>/dev/null \
    || DISPLAY=$display import -window root "$out/gui-xvfb.png" 2>/dev/null \
    || echo "no screenshot tool (ImageMagick's convert x:root)"
  kill "$gui" 2>/dev/null || true
  wait "$gui" 2>/dev/null || true
  kill "$xvfb" 2>/dev/null || true
  [ -n "$shown" ] || status=1
else
  echo "Xvfb/xwininfo not installed: GUI check skipped (apt-get install xvfb x11-utils)"
fi
echo "figures, logs and screenshot in $out"
exit "$status"
