"""Dataset layouts a user brings: UrbanSound8K, ESC-50, SONYC-UST, one folder per class.

Readers list clips (path, label, fold) and the entries they had to skip, each with a reason;
they do not decode audio (that happens once, when clips are embedded). A layout with nothing
usable left is an error naming the folder.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from workbench.api import InputError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


@dataclass(frozen=True)
class Clip:
    path: Path
    label: str
    fold: int  # 1-based cross-validation fold; 0 when the layout defines none


@dataclass
class Dataset:
    root: Path
    layout: str
    clips: list[Clip]
    skipped: list[tuple[str, str]]  # (path, reason)

    @property
    def classes(self) -> list[str]:
        return sorted({c.label for c in self.clips})

    def counts(self) -> dict[tuple[str, int], int]:
        out: dict[tuple[str, int], int] = {}
        for c in self.clips:
            out[(c.label, c.fold)] = out.get((c.label, c.fold), 0) + 1
        return out


def _read_csv(path: Path, required: set[str]) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(path, f"cannot read the metadata CSV: {exc}") from None
    missing = required - set(rows[0] if rows else [])
    if missing:
        raise InputError(path, f"metadata CSV lacks column(s) {', '.join(sorted(missing))}")
    return rows


def _finish(root: Path, layout: str, clips: list[Clip], skipped: list[tuple[str, str]]) -> Dataset:
    if not clips:
        detail = f"; {len(skipped)} entries skipped, first: {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        raise InputError(root, f"no usable audio clips in this {layout} dataset{detail}")
    return Dataset(root, layout, clips, skipped)


def _check_file(path: Path, skipped: list[tuple[str, str]]) -> bool:
    if not path.is_file():
        skipped.append((str(path), "listed in the metadata but missing on disk"))
        return False
    if path.stat().st_size == 0:
        skipped.append((str(path), "empty file"))
        return False
    return True


def read_urbansound8k(root: str | Path) -> Dataset:
    root = Path(root)
    meta = root / "metadata" / "UrbanSound8K.csv"
    if not meta.is_file():
        raise InputError(meta, "not found: an UrbanSound8K folder has metadata/UrbanSound8K.csv")
    clips, skipped = [], []
    for row in _read_csv(meta, {"slice_file_name", "fold", "class"}):
        path = root / "audio" / f"fold{row['fold']}" / row["slice_file_name"]
        if _check_file(path, skipped):
            clips.append(Clip(path, row["class"], int(row["fold"])))
    return _finish(root, "UrbanSound8K", clips, skipped)


def read_esc50(root: str | Path) -> Dataset:
    root = Path(root)
    meta = root / "meta" / "esc50.csv"
    if not meta.is_file():
        raise InputError(meta, "not found: an ESC-50 folder has meta/esc50.csv")
    clips, skipped = [], []
    for row in _read_csv(meta, {"filename", "fold", "category"}):
        path = root / "audio" / row["filename"]
        if _check_file(path, skipped):
            clips.append(Clip(path, row["category"], int(row["fold"])))
    return _finish(root, "ESC-50", clips, skipped)


def read_sonyc_ust(root: str | Path) -> Dataset:
    """SONYC-UST annotations.csv: one row per annotator; a clip's label is its coarse class
    with the most positive votes. Splits train/validate/test map to folds 1/2/3."""
    root = Path(root)
    meta = root / "annotations.csv"
    if not meta.is_file():
        raise InputError(meta, "not found: a SONYC-UST folder has annotations.csv")
    rows = _read_csv(meta, {"split", "audio_filename"})
    coarse = [c for c in rows[0] if c.endswith("_presence") and c.split("_")[0].isdigit() and "-" not in c.split("_")[0]]
    if not coarse:
        raise InputError(meta, "no coarse '<n>_<name>_presence' columns")
    votes: dict[str, dict[str, float]] = {}
    split_of: dict[str, str] = {}
    for row in rows:
        name = row["audio_filename"]
        split_of[name] = row["split"]
        tally = votes.setdefault(name, {})
        for col in coarse:
            try:
                tally[col] = tally.get(col, 0.0) + max(float(row[col] or 0), 0.0)
            except ValueError:
                pass
    fold_of = {"train": 1, "validate": 2, "test": 3}
    clips, skipped = [], []
    for name, tally in votes.items():
        best = max(tally, key=tally.get) if tally else None
        path = root / "audio" / name
        if best is None or tally[best] <= 0:
            skipped.append((str(path), "no positive coarse label"))
        elif _check_file(path, skipped):
            label = best[: -len("_presence")].split("_", 1)[1]
            clips.append(Clip(path, label, fold_of.get(split_of[name], 0)))
    return _finish(root, "SONYC-UST", clips, skipped)


def read_folders(root: str | Path) -> Dataset:
    """One sub-folder per class; no folds are defined (fold 0)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "not a folder")
    clips, skipped = [], []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(class_dir.rglob("*")):
            if path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES:
                if _check_file(path, skipped):
                    clips.append(Clip(path, class_dir.name, 0))
            elif path.is_file():
                skipped.append((str(path), f"not an audio file ({path.suffix or 'no suffix'})"))
    return _finish(root, "folder-per-class", clips, skipped)


READERS = {"urbansound8k": read_urbansound8k, "esc50": read_esc50, "sonyc-ust": read_sonyc_ust, "folders": read_folders}


def detect_layout(root: str | Path) -> str:
    root = Path(root)
    if (root / "metadata" / "UrbanSound8K.csv").is_file():
        return "urbansound8k"
    if (root / "meta" / "esc50.csv").is_file():
        return "esc50"
    if (root / "annotations.csv").is_file():
        return "sonyc-ust"
    return "folders"


def read_dataset(root: str | Path, layout: str = "auto") -> Dataset:
    if not Path(root).exists():
        raise InputError(root, "dataset folder not found")
    return READERS[detect_layout(root) if layout == "auto" else layout](root)
