#!/bin/sh
# Adds the workbench to the desktop's application menu (for this user): run it from the
# unpacked bundle folder. Undo: rm ~/.local/share/applications/distillation-workbench.desktop
set -eu
here=$(cd "$(dirname "$0")" && pwd)
data=${XDG_DATA_HOME:-$HOME/.local/share}
mkdir -p "$data/applications" "$data/icons/hicolor/scalable/apps"
cp "$here/_internal/assets/icons/workbench.svg" "$data/icons/hicolor/scalable/apps/distillation-workbench.svg"
sed "s|^Exec=.*|Exec=\"$here/workbench\"|" "$here/_internal/distillation-workbench.desktop" \
  > "$data/applications/distillation-workbench.desktop"
echo "installed $data/applications/distillation-workbench.desktop (runs $here/workbench)"
