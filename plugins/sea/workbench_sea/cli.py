"""`workbench sea ...`: the SEA plugin's own commands. Importing this module is cheap: numpy and
torch are imported only when a command runs."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

TEACHER_HELP = ("aisfx | openl3:<linear|mel128|mel256>/<music|env>/<512|6144>[@weights.h5] | "
                "keras-h5:<model.h5> | torchscript:<model.pt>[@<sample rate>]")


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Specialized Embedding Approximation (SEA) tools.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    e = sub.add_parser("embed", help="embed audio files with a teacher (like openl3's CLI)",
                       description="Embed audio files with a teacher. For each input, OUT.npz holds <stem> "
                       "(frames x dims, float32) and <stem>__timestamps (seconds; window centres with "
                       "centring, window starts with --no-center).")
    e.add_argument("files", nargs="+", metavar="FILE", help="audio files (WAV, FLAC, OGG)")
    e.add_argument("--teacher", required=True, metavar="SPEC", help=TEACHER_HELP)
    e.add_argument("--hop", type=float, default=0.1, metavar="SECONDS", help="hop between windows (default 0.1)")
    e.add_argument("--no-center", action="store_true", help="no centring pad: the first window starts at 0 s")
    e.add_argument("--batch-size", type=int, default=32, metavar="N", help="windows per forward pass (default 32)")
    e.add_argument("-o", "--output", required=True, metavar="OUT.npz", help="output file")
    return parser


def main(argv: list[str], host=None) -> int:
    parser = build_parser(getattr(host, "prog", None) or "workbench sea")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage error (2) or --help (0): a code, not an exit
        return int(exc.code or 0)
    if args.command == "embed":
        return embed(args)
    return 2  # pragma: no cover - argparse only accepts known commands


def _fail(message: str) -> int:
    print(f"workbench sea: error: {message}", file=sys.stderr)
    return 2


def embed(args: argparse.Namespace) -> int:
    if not args.hop > 0:
        return _fail(f"--hop must be positive (got {args.hop})")
    if args.batch_size < 1:
        return _fail(f"--batch-size must be at least 1 (got {args.batch_size})")
    out = Path(args.output)
    if out.suffix != ".npz":
        out = out.with_name(out.name + ".npz")  # what np.savez would write anyway; say so below
    if not out.parent.is_dir():
        return _fail(f"{out.parent}: output folder does not exist")
    stems: dict[str, str] = {}
    for f in args.files:
        stem = Path(f).stem
        if stem in stems:
            return _fail(f"{f}: same name stem {stem!r} as {stems[stem]}; the output keys would collide")
        stems[stem] = f

    import numpy as np
    from tqdm import tqdm

    from workbench.api import WorkbenchError

    from .compute.teachers import embed_file, load_teacher

    try:
        teacher = load_teacher(args.teacher)
        arrays: dict[str, np.ndarray] = {}
        for path in tqdm(args.files, desc="embed", unit="file", file=sys.stderr, disable=len(args.files) < 2):
            emb, times = embed_file(teacher, path, args.hop, not args.no_center, args.batch_size)
            stem = Path(path).stem
            arrays[stem], arrays[f"{stem}__timestamps"] = emb.astype(np.float32), times
    except WorkbenchError as exc:
        return _fail(str(exc))
    tmp = out.with_name(f".{out.name}.partial.npz")
    try:
        np.savez(tmp, **arrays)
        tmp.replace(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        return _fail(f"{out}: cannot write: {exc.strerror or exc}")
    print(f"wrote {len(args.files)} file(s) x {teacher.embedding_dim}-d embeddings ({teacher.id}) to {out}",
          file=sys.stderr)
    return 0
