#!/usr/bin/env bash
# Build the Linux one-folder bundle and its tarball:
#   dist/distillation-workbench/                 the app (run ./workbench; --selftest checks it)
#   dist/distillation-workbench-VERSION-linux-ARCH.tar.gz
# On a fresh clone it first sets up .venv (scripts/setup) and installs the `package` extra's
# freezer. Options: --clean (discard PyInstaller's analysis cache), --no-tar, --tar-only (pack
# an existing dist/distillation-workbench again without rebuilding it).
# The build is CPU heavy: it runs under `nice`; PYTHON=... builds with another interpreter;
# GZIP_LEVEL (default 1: the CUDA libraries hardly compress, higher levels cost minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
clean=() tar=1 build=1
for arg in "$@"; do
  case "$arg" in
    --clean) clean=(--clean) ;;
    --no-tar) tar=0 ;;
    --tar-only) build=0 ;;
    *) echo "usage: packaging/build.sh [--clean] [--no-tar | --tar-only]" >&2; exit 2 ;;
  esac
done
if [ -z "${PYTHON:-}" ]; then
  [ -x .venv/bin/python ] || scripts/setup  # a fresh clone; an existing .venv is used as it is
  PYTHON=.venv/bin/python
fi
if ! "$PYTHON" -c "import PyInstaller" 2>/dev/null; then
  # The freezer pinned by the `package` extra of pyproject.toml (one source of truth).
  mapfile -t reqs < <("$PYTHON" -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['package'], sep='\n')")
  "$PYTHON" -m pip install -q "${reqs[@]}"
fi

app=dist/distillation-workbench
if [ "$build" = 1 ]; then
  start=$(date +%s)
  nice -n 10 "$PYTHON" -m PyInstaller --noconfirm "${clean[@]}" --log-level WARN \
    --distpath dist --workpath build/pyinstaller packaging/workbench.spec
  cp packaging/install-desktop-entry.sh "$app/"
  echo "bundle: $app ($(du -sh "$app" | cut -f1)), built in $(($(date +%s) - start)) s"
fi
built=$(date +%s)

if [ "$tar" = 1 ]; then
  version=$("$PYTHON" -c "import tomllib; print(tomllib.load(open('pyproject.toml', 'rb'))['project']['version'])")
  tarball="dist/distillation-workbench-$version-linux-$(uname -m).tar.gz"
  gz=$(command -v pigz || echo gzip)
  nice -n 10 tar -C dist -cf - distillation-workbench | nice -n 10 "$gz" "-${GZIP_LEVEL:-1}" > "$tarball.part"
  mv "$tarball.part" "$tarball"
  echo "tarball: $tarball ($(du -sh "$tarball" | cut -f1)), in $(($(date +%s) - built)) s"
fi
