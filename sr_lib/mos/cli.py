"""``mos serve`` and ``mos report``: :func:`add_parser` adds the ``mos`` command to ``python -m sr_lib``; :func:`main`
is ``python -m sr_lib.mos`` (the same two sub-commands). Bad input raises ValueError/OSError with a one-line message.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path

from sr_lib.mos import report as report_lib
from sr_lib.mos import stimuli as stimuli_lib
from sr_lib.mos import store
from sr_lib.mos.server import StudyServer


def _import(args) -> str:
    """Creates the study database from --stimuli or --comparison; returns what was imported, in words."""
    if args.comparison:
        if not args.hr:
            raise ValueError("--comparison needs --hr DIR (the HR images to super-resolve, e.g. Set5/HR)")
        out = Path(args.stimuli_out or Path(args.db).with_name(f"{Path(args.db).stem}_stimuli"))
        variants = [slug.strip() for slug in args.variants.split(",") if slug.strip()] if args.variants else None
        folder, scale = stimuli_lib.from_comparison(args.comparison, args.hr, out, variants)
        if args.scale and args.scale != scale:
            raise ValueError(f"--scale {args.scale} differs from the comparison's data.scale {scale}")
        source = f"comparison {args.comparison} on {args.hr} (stimuli written to {folder})"
    elif args.stimuli:
        folder, scale, source = args.stimuli, args.scale or 4, f"folder {args.stimuli}"
    else:
        raise ValueError(f"{args.db} does not exist yet: give --stimuli DIR or --comparison DIR --hr DIR")
    study = stimuli_lib.load_folder(folder, scale)  # Every error, naming the files, before anything is written.
    calibration = stimuli_lib.calibration_stimuli(scale)
    seed = args.seed if args.seed is not None else secrets.randbits(32)
    store.create_study(args.db, study, calibration, {"scale": scale, "seed": seed, "source": source,
                                                     "repeat_fraction": args.repeat_fraction})
    images = {s.image for s in study}
    return (f"imported {len(study)} stimuli ({len(images)} images x {len(study) // len(images)} methods, anchors and "
            f"HR included) and {len(calibration)} calibration pictures from the {source}; study seed {seed}")


def _check_resume(args, connection) -> str:
    images, methods = store.study_names(connection)
    meta = store.meta(connection)
    if args.stimuli:
        if stimuli_lib.folder_names(args.stimuli) != (images, methods):
            raise ValueError(f"{args.db} holds another study than {args.stimuli} (different images or methods): "
                             "give a new --db for a new study")
    if args.scale and str(args.scale) != meta["scale"]:
        raise ValueError(f"{args.db} was made at x{meta['scale']}, not --scale {args.scale}")
    done = connection.execute("SELECT COUNT(*) FROM ratings").fetchone()[0]
    note = " (stimuli already imported: not regenerated)" if args.stimuli or args.comparison else ""
    return f"resumed {args.db}: {len(images)} images x {len(methods)} methods, {done} ratings stored{note}"


def cmd_serve(args):
    if args.raters < 1:
        raise ValueError(f"--raters must be at least 1, got {args.raters}")
    if not 0 <= args.repeat_fraction <= 1:
        raise ValueError(f"--repeat-fraction must be from 0 to 1, got {args.repeat_fraction}")
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be from 0 to 65535, got {args.port}")
    if store.is_study(args.db):
        connection = store.connect(args.db)
        try:
            print(_check_resume(args, connection))
        finally:
            connection.close()
    else:
        print(_import(args))
    connection = store.connect(args.db)
    try:
        tokens = store.ensure_raters(connection, args.raters)
        progress = dict(connection.execute(
            "SELECT t.rater_id, COUNT(r.trial_id) || '/' || COUNT(*) FROM trials t LEFT JOIN ratings r ON "
            "r.trial_id = t.id GROUP BY t.rater_id"))
        ids = [rater for (rater,) in connection.execute("SELECT id FROM raters ORDER BY id")]
    finally:
        connection.close()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: --host {args.host}: the study is reachable from other machines over plain HTTP; anyone "
              "with a rater URL can rate as that rater", file=sys.stderr)
    if args.no_serve:
        label = f"[{args.host}]" if ":" in args.host else args.host
        for rater, token in zip(ids, tokens):
            print(f"rater {rater} ({progress[rater]} trials rated): http://{label}:{args.port}/r/{token}")
        return
    server = StudyServer(args.db, args.host, args.port)
    try:
        for rater, token in zip(ids, tokens):
            print(f"rater {rater} ({progress[rater]} trials rated): {server.url(token)}")
        print(f"serving on {server.host_label}:{server.port}; Ctrl-C stops (every acknowledged rating is stored; "
              "the same command resumes)", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped: every acknowledged rating is stored; the same command resumes", file=sys.stderr)
    finally:
        server.server_close()


def cmd_report(args):
    if args.bootstrap < 100:
        raise ValueError(f"--bootstrap must be at least 100, got {args.bootstrap}")
    written = report_lib.write_report(args.db, args.out, n_boot=args.bootstrap)
    print(written["text"])
    print(f"report: {written['md'].parent}")
    for key in ("md", "ratings", "per_method", "figure"):
        print(f"  {written[key]}")


def _add_commands(commands):
    serve = commands.add_parser("serve", help="import the stimuli (first run), invite raters, serve the rating page")
    serve.add_argument("--db", required=True, help="the study database (SQLite): created on the first run from "
                                                   "--stimuli or --comparison, resumed afterwards")
    source = serve.add_mutually_exclusive_group()
    source.add_argument("--stimuli", metavar="DIR", help="study folder: DIR/HR/<image>.png (reference) and "
                                                         "DIR/<method>/<image>.png (SR, HR size)")
    source.add_argument("--comparison", metavar="DIR", help="a `python -m sr_lib compare --out DIR` run: each "
                                                            "variant's final generator on --hr")
    serve.add_argument("--hr", metavar="DIR", help="HR images for --comparison (e.g. Set5/HR)")
    serve.add_argument("--variants", help="comma-separated variant slugs for --comparison (default: every one)")
    serve.add_argument("--stimuli-out", metavar="DIR", help="where --comparison writes its study folder (default: "
                                                            "<db stem>_stimuli beside --db)")
    serve.add_argument("--scale", type=int, help="the anchors' downscaling factor (default 4; --comparison: its "
                                                 "data.scale)")
    serve.add_argument("--raters", type=int, default=1, help="rater sessions the study should have: missing ones "
                                                             "are created (a token each), none removed; default 1")
    serve.add_argument("--repeat-fraction", type=float, default=0.1,
                       help="share of trials shown again later, for consistency (new study only); default 0.1")
    serve.add_argument("--seed", type=int, help="study seed of the raters' orders (new study only; default random, "
                                                "stored)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine "
                                                           "only); another one is reachable from the network")
    serve.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free one)")
    serve.add_argument("--no-serve", action="store_true", help="import and invite, print the URLs, and exit")
    serve.set_defaults(func=cmd_serve)
    report = commands.add_parser("report", help="MOS per method with 95%% intervals, screening, significance")
    report.add_argument("--db", required=True, help="the study database")
    report.add_argument("--out", help="report folder (default: <db stem>_report beside --db)")
    report.add_argument("--bootstrap", type=int, default=report_lib.N_BOOT, help="bootstrap resamples (default "
                                                                                 f"{report_lib.N_BOOT})")
    report.set_defaults(func=cmd_report)
    for command in (serve, report):  # As every command of `python -m sr_lib` accepts it (see sr_lib.console).
        command.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                             help="also show TensorFlow's own log output")


def add_parser(subparsers):
    """Adds ``mos serve`` and ``mos report`` to the sub-commands of ``python -m sr_lib``."""
    mos = subparsers.add_parser("mos", help="blind mean-opinion-score study in the browser (serve, report)")
    _add_commands(mos.add_subparsers(dest="mos_command", required=True))
    return mos


def main(argv=None) -> int:
    """``python -m sr_lib.mos {serve,report}``, reporting errors as the top command line does."""
    parser = argparse.ArgumentParser(prog="python -m sr_lib.mos", description="blind MOS study in the browser")
    _add_commands(parser.add_subparsers(dest="mos_command", required=True))
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
