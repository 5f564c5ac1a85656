"""``workbench vmat ...``: the VMAT plugin's command line.

Subcommands:
  gamma REF.dcm EVAL.dcm   gamma analysis of two RTDOSE files (grids may differ)

Heavy modules (torch, pydicom, scipy) are imported inside the commands, so importing
this module (e.g. for ``--help``) stays cheap.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import Any, Callable

EXIT_OK = 0
EXIT_BAD_INPUT = 2


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0 or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
        return value

    return parse


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < 100:
        raise argparse.ArgumentTypeError(f"must be a percentage in [0, 100), not {text}")
    return value


def build_parser(prog: str = "workbench vmat") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="VMAT dose engine tools.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    g = sub.add_parser(
        "gamma",
        help="gamma analysis of two RTDOSE files",
        description=(
            "Gamma analysis of EVAL against REF (two RTDOSE files in the same frame of "
            "reference; the grids may differ: EVAL is interpolated at the search points)."
        ),
    )
    g.add_argument("reference", metavar="REF.dcm", help="reference RTDOSE (e.g. the ground truth)")
    g.add_argument("evaluation", metavar="EVAL.dcm", help="evaluated RTDOSE (e.g. the prediction)")
    g.add_argument("--dd", type=_positive(float), default=2.0, help="dose difference, %% (default 2)")
    g.add_argument("--dta", type=_positive(float), default=2.0, help="distance to agreement, mm (default 2)")
    g.add_argument(
        "--cutoff", type=_percent, default=10.0, help="low-dose cutoff, %% of the reference maximum (default 10)"
    )
    g.add_argument("--local", action="store_true", help="local gamma (dd relative to the reference dose at each point)")
    g.add_argument(
        "--prescription", type=_positive(float), default=None, metavar="GY",
        help="global gamma: dd as %% of this dose instead of the reference maximum",
    )
    g.add_argument(
        "--interp-fraction", type=_positive(float), default=10, metavar="N",
        help="search resolution dta / N (default 10)",
    )
    g.add_argument("--max-gamma", type=_positive(float), default=2.0, metavar="G", help="search up to G x dta (default 2)")
    g.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda (default: cuda if available)")
    g.add_argument("--save-map", default=None, metavar="FILE.npy", help="save the gamma map (NaN: not evaluated)")
    g.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    g.set_defaults(handler=_cmd_gamma)
    return parser


def main(argv: list[str], host: Any = None) -> int:
    """Entry point: ``workbench vmat ARGS`` (``host`` is the workbench's CliHost, or None)."""
    prog = getattr(host, "prog", None) or "workbench vmat"
    parser = build_parser(prog)
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:  # --help, or a usage error (argparse already printed it)
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_BAD_INPUT
    from workbench.api import InputError

    try:
        return args.handler(args)
    except InputError as exc:
        print(f"{parser.prog} {args.command}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _cmd_gamma(args: argparse.Namespace) -> int:
    import numpy as np

    from workbench.api import InputError

    from .compute.dicom_io import read_rtdose, resample
    from .compute.gamma import gamma

    with warnings.catch_warnings():  # pydicom's remarks on odd but readable values
        warnings.simplefilter("ignore", UserWarning)
        ref = read_rtdose(args.reference)
        ev = read_rtdose(args.evaluation)
    if ref.frame_of_reference_uid and ev.frame_of_reference_uid and ref.frame_of_reference_uid != ev.frame_of_reference_uid:
        raise InputError(
            args.evaluation,
            f"frame of reference {ev.frame_of_reference_uid} differs from {args.reference}'s {ref.frame_of_reference_uid}",
        )
    if ref.meta.get("dose_units") != ev.meta.get("dose_units"):
        raise InputError(
            args.evaluation, f"dose units {ev.meta.get('dose_units')} differ from {args.reference}'s {ref.meta.get('dose_units')}"
        )
    if float(ref.array.max()) <= 0:
        raise InputError(args.reference, "reference dose is zero everywhere")
    note = None
    if not ref.same_orientation(ev):
        ev = resample(ev, ref)
        note = "orientations differ: evaluation resampled onto the reference grid first"
    try:
        result = gamma(
            ref.array,
            ev.array,
            axes_reference=ref.frame_axes(),
            axes_evaluation=ev.frame_axes(),
            dd=args.dd,
            dta=args.dta,
            cutoff=args.cutoff,
            local=args.local,
            prescription=args.prescription,
            interp_fraction=args.interp_fraction,
            max_gamma=args.max_gamma,
            device=args.device,
        )
    except ValueError as exc:  # e.g. a single-plane evaluation against a volume
        raise InputError(args.evaluation, str(exc)) from exc
    if args.save_map:
        np.save(args.save_map, result.gamma_map)
    summary = result.summary()
    summary.update(
        reference=str(args.reference),
        evaluation=str(args.evaluation),
        reference_shape=list(ref.shape),
        evaluation_shape=list(ev.shape),
        dose_units=ref.meta.get("dose_units"),
    )
    if note:
        summary["note"] = note
    if args.json:
        print(json.dumps(_jsonable(summary)))
        return EXIT_OK
    mode = "local" if args.local else f"global, 100% = {result.normalisation_dose:.4g} {_unit(ref)}"
    print(f"gamma {args.dd:g}%/{args.dta:g} mm ({mode}), cutoff {args.cutoff:g}% ({result.cutoff_dose:.4g} {_unit(ref)})")
    print(f"reference:  {args.reference}  {_grid(ref)}")
    print(f"evaluation: {args.evaluation}  {_grid(ev)}")
    if note:
        print(f"note: {note}")
    if result.n_evaluated == 0:
        print("pass rate: n/a (no point evaluated)")
    else:
        print(f"pass rate: {result.pass_rate:.2f}%  ({result.n_passed} of {result.n_evaluated} points evaluated pass)")
        print(
            f"mean gamma {summary['mean_gamma']:.3f}, 95th percentile {summary['gamma_p95']:.3f} "
            f"(max searched {args.max_gamma:g}); {result.seconds:.2f} s on {result.device}"
        )
    return EXIT_OK


def _unit(volume) -> str:
    return "Gy" if volume.meta.get("dose_units", "GY") == "GY" else "(relative)"


def _grid(volume) -> str:
    shape = "x".join(str(n) for n in volume.shape)
    spacing = "x".join(f"{s:g}" for s in volume.spacing)
    return f"({shape} voxels of {spacing} mm)"


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and obj != obj:
        return None  # NaN is not JSON
    return obj


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
