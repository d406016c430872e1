"""Command line: ``python -m sr_lib {train,compare,interpolate,evaluate,upscale,export,mos} --help``. No logic of
its own: it builds a config and calls training, evaluation, inference and the MOS study.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _config_arguments(parser):
    parser.add_argument("--preset", default="demo", help="paper, seed, srresnet, demo (CPU, minutes), reference "
                                                         "(the shipped loss comparison) or ci (seconds); default: demo")
    parser.add_argument("--config", help="a config.json (e.g. from a run directory); overrides --preset")
    parser.add_argument("--data", help="training images: a folder (recursive) or a DIV2K root; default: the "
                                       "embedded scikit-image photographs")
    parser.add_argument("--valid-data", help="validation images (default: DIV2K_valid_HR or the embedded split)")
    parser.add_argument("--vgg-weights", help="'imagenet' (download), a local weights file, or 'none' (random: "
                                              "offline runs; results are labelled)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set train.gan_steps=1000 (value parsed as JSON)")
    parser.add_argument("--out", help="run directory (default: runs/<name>); re-run the same command to resume")


def _build_config(args):
    from sr_lib.config import Config, ConfigError, get_preset

    config = Config.from_json(args.config) if args.config else get_preset(args.preset)
    overrides = {}
    if args.data is not None:
        overrides["data.source"] = args.data
    if args.valid_data is not None:
        overrides["data.valid_source"] = args.valid_data
    if args.vgg_weights is not None:
        overrides["loss.vgg_weights"] = None if args.vgg_weights.lower() == "none" else args.vgg_weights
    for item in args.set:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            overrides[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            overrides[key.strip()] = text  # A bare string such as --set loss.content=perpix.
    return config.replace(**overrides) if overrides else config


def _describe(config) -> str:
    m, l, d = config.model, config.loss, config.data
    return f"{config.name}_x{d.scale}_b{m.num_blocks}c{m.channels}_{l.content}+{l.adversarial}"


def cmd_train(args):
    from sr_lib.core.storage import as_path
    from sr_lib.training.phases import pretrain, train_gan

    config = _build_config(args)
    out = as_path(args.out or Path("runs") / _describe(config))  # A local folder or a gs:// URL.
    pretrained = args.pretrained
    if args.phase in ("pretrain", "both"):
        result = pretrain(config, out / "pretrain")
        print(f"phase 1 (SRResNet, {config.train.pretrain_loss.upper()}): best PSNR-Y {result.best_psnr_y:.2f} dB at "
              f"step {result.best_step}; "
              f"{result.final_path}")
        pretrained = result.final_path
    if args.phase in ("gan", "both"):
        if pretrained is None:
            raise ValueError("--phase gan needs --pretrained PATH.keras (a phase-1 generator); training a GAN from "
                             "scratch tends to collapse")
        result = train_gan(config, out / "gan", pretrained)
        note = " (random VGG weights: not a perceptual result)" if result.vgg_weights == "random" else ""
        print(f"phase 2 (SRGAN): best PSNR-Y {result.best_psnr_y:.2f} dB at step {result.best_step}; "
              f"{result.final_path}{note}")
    print(f"run directory: {out}")


def cmd_compare(args):
    from sr_lib.core import storage
    from sr_lib.training.experiment import get_variants, run_comparison

    config = _build_config(args)
    variants = get_variants(args.variants.split(",") if args.variants else None)
    if args.mos_db and not Path(args.mos_db).is_file():  # Before hours of training, not after.
        raise ValueError(f"--mos-db: no such study database: {args.mos_db}")
    # A local folder or a gs:// URL, as are --pretrained and --benchmark.
    out = storage.as_path(args.out or Path("runs") / f"compare_{config.name}_x{config.data.scale}")
    report = run_comparison(config, out, variants, benchmarks=args.benchmark, pretrained=args.pretrained)
    table = storage.as_path(report["table"])
    with storage.gfile_errors(table):
        print(table.read_text())
    if report["random_vgg"]:
        print("note: VGG weights were random (offline); VGG-based rows are labelled and are not perceptual results")
    if report.get("timings"):  # Where this command's time went (training, evaluation, sweep, figures).
        print(f"{report['timings']['summary']} on {report['timings']['cpu']}")
    print(f"report: {table.parent}")
    print(f"  table:  {report['table']}\n  curves: {report['curves']}\n  grid:   {report['grid']}")
    if report.get("interpolation_plot"):
        print(f"  interpolation: {report['interpolation_plot']}")
    if args.mos_db:
        from sr_lib.training.report import add_mos_table

        add_mos_table(table.parent, args.mos_db)
        print(f"  MOS table (from {args.mos_db}) added to {report['table']}")
    if report.get("perception_distortion"):
        print(f"  perception-distortion: {report['perception_distortion']}")
    if report.get("zoomed_crops"):
        print(f"  zoomed crops: {report['zoomed_crops']}")
    print(f"run directory: {out}")


def cmd_evaluate(args):
    from sr_lib.core import storage
    from sr_lib.evaluation.evaluate import evaluate_folders, evaluation_table, load_model, method_labels, resolve_scale

    models = list(zip(method_labels(args.model), [load_model(path) for path in args.model]))
    scale = resolve_scale(models, args.scale)
    out = storage.as_path(args.out or Path("runs") / "evaluate")
    evaluate_folders(args.data, models, scale, out, save_images=args.save_images, niqe=not args.no_niqe)
    print(evaluation_table(json.loads(storage.as_path(out / "evaluation.json").read_text())))
    if not args.no_niqe:
        print("niqe: no-reference (lower is better), Y of YCbCr, border = scale; HR: the HR images' own NIQE "
              "(their PSNR/SSIM: —)")
    if args.save_images:
        print(f"SR images (uint8 PNG, as measured): {out / 'images'}/<dataset>/<method>/")
    print(f"run directory: {out}")


def cmd_upscale(args):
    from sr_lib.inference.upscaler import load_upscaler
    from sr_lib.inference.upscale import upscale_files

    upscaler = load_upscaler(args.model)
    report = upscale_files(upscaler, args.inputs, args.out, tile=args.tile, progress=not args.no_progress,
                           context=args.context, precision=args.precision)
    for source, target in report.written:
        print(f"{source} -> {target}")
    for _, message in report.failed:
        print(f"error: {message}", file=sys.stderr)
    how = (f"tiles of {report.tile} LR px with {report.context} px of context, receptive field "
           f"{upscaler.field.radius} px" if report.tile else "whole images") + f", {report.precision}"
    if report.whole_images:
        how += f"; {report.whole_images} image(s) within one tile's memory ran whole"
    print(f"upscaled {len(report.written)} image(s) x{report.scale} into {args.out} ({how})")
    if report.failed:
        raise RuntimeError(f"{len(report.failed)} input(s) failed (listed above); the others were written")


def cmd_export(args):
    from sr_lib.core import storage
    from sr_lib.inference.export import TFLITE_FILE, export_generator

    metadata = export_generator(args.model, args.out, tflite=args.tflite, config_path=args.config,
                                metrics_path=args.metrics, onnx=args.onnx)
    print(f"exported {args.model} (x{metadata['scale']}, float32) as a SavedModel: {args.out}")
    for name, text in metadata["endpoints"].items():
        print(f"  {name}: {text}")
    known = [what for what, key in (("training config", "training_config"), ("metrics", "metrics")) if metadata[key]]
    print(f"  stored with it: scale, receptive field{''.join(', ' + k for k in known)}: "
          f"{storage.as_path(args.out) / 'assets.extra' / 'sr_lib.json'} (also the 'metadata' endpoint)")
    if args.tflite:
        print(f"tflite: {storage.as_path(args.out) / TFLITE_FILE}")
    if args.onnx:
        print(f"onnx: {storage.as_path(args.out) / metadata['onnx']} (uint8 -> uint8, opset {metadata['onnx_opset']}), "
              f"{storage.as_path(args.out) / metadata['onnx_float']} (float32 [0, 1] -> [0, 1])")


def cmd_interpolate(args):
    from sr_lib.nets.interpolation import interpolate_files

    out = interpolate_files(args.model_a, args.model_b, args.alpha, args.out)
    print(f"wrote {out}: (1 - {args.alpha:g}) * {args.model_a} + {args.alpha:g} * {args.model_b}")


def make_parser():
    parser = argparse.ArgumentParser(prog="python -m sr_lib", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="pretrain SRResNet (MSE), then train SRGAN")
    _config_arguments(train)
    train.add_argument("--phase", choices=("both", "pretrain", "gan"), default="both")
    train.add_argument("--pretrained", help="phase-1 generator (.keras) to start phase 2 from")
    train.set_defaults(func=cmd_train)
    compare = commands.add_parser("compare", help="train every loss variant from one pretrained generator, report")
    _config_arguments(compare)
    compare.add_argument("--pretrained", help="generator (.keras, local or gs://...) every variant starts from, e.g. "
                                              "saved_models/srresnet_x4/srresnet_x4.keras; skips phase 1")
    compare.add_argument("--variants", help="comma-separated variant slugs, or 'all' (default: the four of "
                                                "make demo; see README)")
    compare.add_argument("--benchmark", action="append", default=[], metavar="DIR",
                         help="HR image folder (local or gs://...) to evaluate on as well (e.g. Set5); repeatable; "
                              "never trained on")
    compare.add_argument("--mos-db", metavar="STUDY.sqlite", help="a blind study of `mos serve` (e.g. on this "
                                                                  "comparison's outputs): its MOS table joins the report")
    compare.set_defaults(func=cmd_compare)
    interpolate = commands.add_parser("interpolate", help="blend two generators of one architecture (ESRGAN "
                                                           "network interpolation)")
    interpolate.add_argument("model_a", metavar="A.keras", help="alpha = 0 end, e.g. the SRResNet-MSE generator")
    interpolate.add_argument("model_b", metavar="B.keras", help="alpha = 1 end, e.g. an SRGAN fine-tuned from A")
    interpolate.add_argument("--alpha", type=float, required=True, help="weights = (1 - alpha) * A + alpha * B")
    interpolate.add_argument("--out", required=True, help="the blended generator (.keras)")
    interpolate.set_defaults(func=cmd_interpolate)
    evaluate = commands.add_parser("evaluate", help="PSNR/SSIM (Y, border = scale; and RGB) and NIQE of models and "
                                                    "bicubic, with the HR images' own NIQE")
    evaluate.add_argument("--model", action="append", default=[], metavar="MODEL",
                          help="generator .keras file or exported SavedModel folder (or a gs://... URL); repeatable (one "
                               "table); omit to evaluate bicubic only")
    evaluate.add_argument("--data", nargs="+", required=True, metavar="DIR",
                          help="folders of HR images (local or gs://... URLs)")
    evaluate.add_argument("--scale", type=int, help="upscaling factor (default: the models', else 4)")
    evaluate.add_argument("--save-images", action="store_true",
                          help="also write every SR image (uint8 PNG, as measured) under OUT/images/")
    evaluate.add_argument("--no-niqe", action="store_true",
                          help="skip NIQE (and the HR row, which only holds NIQE) for speed")
    evaluate.add_argument("--out", help="where evaluation.json goes: a folder or a gs://... URL (default: "
                                        "runs/evaluate)")
    evaluate.set_defaults(func=cmd_evaluate)
    upscale = commands.add_parser("upscale", help="super-resolve image files/folders with a .keras or exported model")
    upscale.add_argument("--model", required=True, help="generator .keras file, SavedModel folder from `export` "
                                                        "or its model.onnx (local or gs://...)")
    upscale.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders (recursive; local or "
                                                                    "gs://...)")
    upscale.add_argument("--out", required=True, help="output folder, local or gs://...: <stem>_x<scale>.png (never "
                                                      "over an input)")
    upscale.add_argument("--tile", type=int, help="kept tile side in LR pixels (each tile also reads --context "
                                                  "pixels around it; the result equals whole-image inference within "
                                                  "1 grey level); 0 = whole image; default: sized for about 0.5 GiB "
                                                  "per activation, and an image no larger than one tile's window "
                                                  "runs whole")
    upscale.add_argument("--context", type=int, help="LR pixels of context each tile reads on every side, at most "
                                                     "the receptive field (larger values are clamped to it); "
                                                     "default: measured, for SRResNet-16 x4 12 px in float32, its "
                                                     "whole field (40) in bfloat16 (benchmarks/tile_context.py)")
    upscale.add_argument("--precision", default="auto", choices=("auto", "float32", "mixed_bfloat16"),
                         help="auto (default): mixed_bfloat16 for a .keras generator on a CPU with native bf16 "
                              "(within 0.01 dB PSNR-Y of float32, benchmarks/bf16_quality.py), else float32")
    upscale.add_argument("--no-progress", action="store_true", help="no progress bars")
    upscale.set_defaults(func=cmd_upscale)
    export = commands.add_parser("export", help="write a generator as a TensorFlow SavedModel (uint8 and float "
                                                "endpoints, metadata), optionally TFLite")
    export.add_argument("--model", required=True, help="generator .keras file (local or gs://...)")
    export.add_argument("--out", required=True, help="SavedModel folder to create, e.g. saved_models/NAME or "
                                                     "gs://bucket/models/NAME (uploaded with saved_model.pb last)")
    export.add_argument("--tflite", action="store_true", help="also write OUT/model.tflite (dynamic H, W)")
    export.add_argument("--onnx", action="store_true", help="also write OUT/model.onnx (uint8 in and out, dynamic H, "
                                                            "W) and OUT/model_float.onnx, with tf2onnx")
    export.add_argument("--config", help="training config.json to store (default: config.json beside the model)")
    export.add_argument("--metrics", help="log.csv or evaluation.json to store (default: log.csv beside the model)")
    export.set_defaults(func=cmd_export)
    from sr_lib.mos.cli import add_parser as add_mos_parser

    add_mos_parser(commands)
    parser.add_argument("--verbose", action="store_true", help="also show TensorFlow's own log output")
    for command in commands.choices.values():
        command.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                             help="also show TensorFlow's own log output")
    return parser


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("interrupted: the latest checkpoint is kept; run the same command again to resume", file=sys.stderr)
        return 130
    except (ValueError, RuntimeError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
