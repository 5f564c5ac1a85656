"""`workbench sea ...`: the SEA plugin's own commands (torch is imported only when needed)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str], host=None) -> int:
    parser = argparse.ArgumentParser(prog=getattr(host, "prog", "workbench sea"),
                                     description="Specialized Embedding Approximation tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    e = sub.add_parser("embed", help="embed audio files with a teacher, like openl3's CLI")
    e.add_argument("files", nargs="+", metavar="FILE")
    e.add_argument("--teacher", required=True, help="aisfx | keras-h5:<path> | torchscript:<path>[@rate]")
    e.add_argument("--hop", type=float, default=0.1, help="hop between windows, seconds (default 0.1)")
    e.add_argument("--no-center", action="store_true", help="no centre padding (first window starts at 0 s)")
    e.add_argument("--batch-size", type=int, default=32)
    e.add_argument("-o", "--output", required=True, help="output .npz: <stem> and <stem>__timestamps per file")
    args = parser.parse_args(argv)
    return embed(args)


def embed(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from workbench.api import WorkbenchError

    from .compute.teachers import embed_file, load_teacher

    try:
        teacher = load_teacher(args.teacher)
        arrays = {}
        for path in tqdm(args.files, desc="embed", file=sys.stderr, disable=len(args.files) < 2):
            emb, times = embed_file(teacher, path, args.hop, not args.no_center, args.batch_size)
            stem = Path(path).stem
            arrays[stem], arrays[f"{stem}__timestamps"] = emb, times
    except WorkbenchError as exc:
        print(f"workbench sea: error: {exc}", file=sys.stderr)
        return 2
    np.savez(args.output, **arrays)
    print(f"wrote {len(args.files)} file(s) x {teacher.embedding_dim}-d embeddings to {args.output}", file=sys.stderr)
    return 0
