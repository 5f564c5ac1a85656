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
    class_id: int = -1  # the layout's numeric class id where it has one (UrbanSound8K classID, ESC-50 target)
    labels: tuple[str, ...] = ()  # every positive label of a multi-label layout (SONYC-UST); else (label,)


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


def _read_csv(path: Path, required: set[str]) -> tuple[list[dict[str, str]], list[str]]:
    """Rows and header of a metadata CSV, with the required columns checked."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rows, fields = list(reader), list(reader.fieldnames or [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(path, f"cannot read the metadata CSV: {exc}") from None
    missing = required - set(fields)
    if missing:
        raise InputError(path, f"metadata CSV lacks column(s) {', '.join(sorted(missing))}")
    return rows, fields


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
    rows, fields = _read_csv(meta, {"slice_file_name", "fold"})
    if "class" not in fields and "classID" not in fields:
        raise InputError(meta, "metadata CSV lacks column(s) class (or classID)")
    for line, row in enumerate(rows, start=2):
        fold, class_id = _int(row.get("fold")), _int(row.get("classID"))
        label = (row.get("class") or "").strip() or (str(class_id) if class_id is not None else "")
        if fold is None or not label:
            skipped.append((f"{meta}:{line}", f"row without a valid fold/class ({row.get('slice_file_name')!r})"))
            continue
        path = root / "audio" / f"fold{fold}" / row["slice_file_name"]
        if _check_file(path, skipped):
            clips.append(Clip(path, label, fold, -1 if class_id is None else class_id, (label,)))
    return _finish(root, "UrbanSound8K", clips, skipped)


def _int(value: str | None) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def read_esc50(root: str | Path) -> Dataset:
    root = Path(root)
    meta = root / "meta" / "esc50.csv"
    if not meta.is_file():
        raise InputError(meta, "not found: an ESC-50 folder has meta/esc50.csv")
    clips, skipped = [], []
    rows, fields = _read_csv(meta, {"filename", "fold"})
    if "category" not in fields and "target" not in fields:
        raise InputError(meta, "metadata CSV lacks column(s) category (or target)")
    for line, row in enumerate(rows, start=2):
        fold, target = _int(row.get("fold")), _int(row.get("target"))
        label = (row.get("category") or "").strip() or (str(target) if target is not None else "")
        if fold is None or not label:
            skipped.append((f"{meta}:{line}", f"row without a valid fold/category ({row.get('filename')!r})"))
            continue
        path = root / "audio" / row["filename"]
        if _check_file(path, skipped):
            clips.append(Clip(path, label, fold, -1 if target is None else target, (label,)))
    return _finish(root, "ESC-50", clips, skipped)


def read_sonyc_ust(root: str | Path) -> Dataset:
    """SONYC-UST (v1/v2) ``annotations.csv``: one row per (clip, annotator), coarse tags in
    ``<n>_<name>_presence`` columns. Where a clip has rows of annotator 0 (the SONYC team's agreed
    ground truth, in v2's validate/test splits) only those count; otherwise every annotator's votes
    are summed. ``labels`` holds the coarse tags with a positive majority (all ground-truth positives),
    ``label`` the most voted one; a clip with no positive tag is skipped. Splits train / validate /
    test map to folds 1 / 2 / 3. Audio is looked up in audio/, then audio-eval/."""
    root = Path(root)
    meta = root / "annotations.csv"
    if not meta.is_file():
        raise InputError(meta, "not found: a SONYC-UST folder has annotations.csv")
    rows, fields = _read_csv(meta, {"split", "audio_filename"})
    coarse = [c for c in fields if c.endswith("_presence") and c.split("_")[0].isdigit()]
    if not coarse:
        raise InputError(meta, "no coarse '<n>_<name>_presence' columns")
    by_clip: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_clip.setdefault(row["audio_filename"], []).append(row)
    fold_of = {"train": 1, "validate": 2, "test": 3}
    clips, skipped = [], []
    for name, clip_rows in by_clip.items():
        truth = [r for r in clip_rows if (r.get("annotator_id") or "").strip() == "0"]
        voters = truth or clip_rows
        votes = {c: sum(_vote(r.get(c)) for r in voters) for c in coarse}
        best = max(votes, key=lambda c: votes[c])
        path = next((p for p in (root / "audio" / name, root / "audio-eval" / name) if p.exists()), root / "audio" / name)
        if votes[best] <= 0:
            skipped.append((str(path), "no positive coarse label"))
            continue
        if _check_file(path, skipped):
            positive = tuple(_tag(c) for c in coarse if votes[c] > 0 and votes[c] * 2 >= len(voters))
            clips.append(Clip(path, _tag(best), fold_of.get(clip_rows[0]["split"].strip(), 0), coarse.index(best),
                              positive or (_tag(best),)))
    return _finish(root, "SONYC-UST", clips, skipped)


def _vote(value: str | None) -> float:
    try:
        return max(float(value or 0), 0.0)  # -1 marks "not annotated" in some releases
    except ValueError:
        return 0.0


def _tag(column: str) -> str:
    return column[: -len("_presence")].split("_", 1)[1]


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
    if layout != "auto" and layout not in READERS:
        from workbench.api import ConfigError

        raise ConfigError(f"unknown dataset layout {layout!r} (auto, {', '.join(READERS)})", key="dataset_format")
    return READERS[detect_layout(root) if layout == "auto" else layout](root)
