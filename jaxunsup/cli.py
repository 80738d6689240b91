"""Command line: `jaxunsup list | run NAME --workdir DIR [--field value ...] | reproduce |
style-transfer [--field value ...] --out PNG`.

Flags for `run` and `style-transfer` come from the experiment's Config dataclass
(`--batch-size 50`, tuples as `--hidden 128,32,10`, booleans as `--flag/--no-flag`, `none` for
an optional value; a field's metadata "help" heads its help line). Every command's user errors
are reported here: one line, exit code 2.

Commands that compile (`run`, `reproduce`, `style-transfer`) keep XLA's compiled programs in a
persistent cache (`jaxunsup.cache`): `--cache-dir DIR` moves it, `--no-cache` (or
`JAXUNSUP_CACHE_DIR=off`) turns it off. Only the experiment a command names is imported, so
`list` and `--help` start without loading JAX.
"""

from __future__ import annotations

import _thread
import argparse
import dataclasses
import signal
import sys
import threading
import types
import typing
from pathlib import Path

from jaxunsup import cache
from jaxunsup.files import check_workdir, user_message
from jaxunsup.registry import EXPERIMENTS, Experiment


def _parse_tuple(item_type):
    def parse(text: str):
        parts = [p for p in text.replace(" ", "").split(",") if p]
        try:
            return tuple(item_type(p) for p in parts)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {item_type.__name__} values, got {text!r}"
            ) from None

    return parse


def _optional(parse):
    def wrapped(text: str):
        return None if text.lower() in ("none", "") else parse(text)

    return wrapped


def _field_argument(hint) -> dict:
    """argparse keyword arguments for a Config field's type hint."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        inner = [a for a in args if a is not type(None)][0]
        kwargs = _field_argument(inner)
        kwargs["type"] = _optional(kwargs.get("type", str))
        return kwargs
    if hint is bool:
        return {"action": argparse.BooleanOptionalAction}
    if origin is typing.Literal:
        return {"type": type(args[0]), "choices": list(args)}
    if origin is tuple:
        return {"type": _parse_tuple(args[0]), "metavar": "A,B,..."}
    if hint in (int, float, str):
        return {"type": hint}
    raise TypeError(f"unsupported Config field type {hint!r}")


def _add_config_flags(parser: argparse.ArgumentParser, config: type) -> None:
    """A flag per field of the Config class `config` (its help: the field's metadata "help",
    if any, and its default); unset flags stay out of the parsed namespace."""
    hints = typing.get_type_hints(config)
    for field in dataclasses.fields(config):
        kwargs = _field_argument(hints[field.name])
        flags = [f"--{field.name.replace('_', '-')}"]
        if "_" in field.name:
            flags.append(f"--{field.name}")
        default = field.default
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        text = field.metadata.get("help")
        parser.add_argument(
            *flags, dest=field.name, default=argparse.SUPPRESS,
            help=f"{text} (default: {shown})" if text else f"(default: {shown})", **kwargs,
        )  # fmt: skip


def _add_cache_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--cache-dir", type=Path, default=None, metavar="DIR",
        help="XLA compilation cache folder (default: $JAXUNSUP_CACHE_DIR, else "
        "~/.cache/jaxunsup/xla; a subfolder per host CPU)",
    )  # fmt: skip
    group.add_argument(
        "--no-cache", action="store_true", help="compile everything afresh, cache nothing"
    )


def _add_scale_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--devices", default="1", metavar="N|all",
        help="train data-parallel over N devices (or all, across every process); default 1",
    )  # fmt: skip
    group = parser.add_argument_group("several hosts (jax.distributed)")
    group.add_argument(
        "--coordinator", default=None, metavar="HOST:PORT",
        help="process 0's address (default: $JAX_COORDINATOR_ADDRESS; none: one process)",
    )  # fmt: skip
    group.add_argument("--num-processes", type=int, default=None, metavar="N",
                       help="processes in the run (default: $JAX_NUM_PROCESSES)")  # fmt: skip
    group.add_argument("--process-id", type=int, default=None, metavar="I",
                       help="this process's index (default: $JAX_PROCESS_ID)")  # fmt: skip


def _start_processes(args: argparse.Namespace) -> None:
    """Joins a multi-process run and sets `--devices`, before anything touches a device."""
    from jaxunsup import distributed

    distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    distributed.set_default_devices(args.devices)


def _needs(argv: list[str] | None) -> set[str]:
    """The experiments (and "style-transfer") whose flags `argv`'s command needs built."""
    if argv is None:
        return set(EXPERIMENTS) | {"style-transfer"}
    if argv[:1] == ["run"] and len(argv) > 1 and argv[1] in EXPERIMENTS:
        return {argv[1]}
    return {"style-transfer"} if argv[:1] == ["style-transfer"] else set()


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser. Given `argv`, only the flags its command needs are built (importing that
    experiment's module alone); without, every experiment's flags (imports them all)."""
    needs = _needs(argv)
    parser = argparse.ArgumentParser(
        prog="jaxunsup", description="Classic unsupervised learning in JAX, verified vs PyTorch."
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="{list,run,reproduce,style-transfer}"
    )
    sub.add_parser("list", help="list the experiments")

    run = sub.add_parser("run", help="run one experiment")
    exps = run.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")
    for name, exp in EXPERIMENTS.items():
        p = exps.add_parser(name, help=f"{exp.summary} (seed {exp.seed})")
        p.add_argument("--workdir", required=True, type=Path, help="output folder")
        p.add_argument(
            "--preset", choices=("default", "quick", "full"), default="default",
            help="start from the seed's settings (default/full) or the quick preset",
        )  # fmt: skip
        _add_cache_flags(p)
        _add_scale_flags(p)
        if name in needs:
            _add_config_flags(p, exp.config)

    rep = sub.add_parser("reproduce", help="run every experiment and write an HTML report")
    rep.add_argument("--workdir", required=True, type=Path)
    mode = rep.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick")
    mode.add_argument("--full", dest="mode", action="store_const", const="full")
    rep.set_defaults(mode="quick")
    rep.add_argument(
        "--only", type=_parse_tuple(str), default=None, metavar="NAME,NAME",
        help=f"run only these experiments (from: {', '.join(EXPERIMENTS)})",
    )  # fmt: skip
    _add_cache_flags(rep)
    st = sub.add_parser(
        "style-transfer", help="stylise your own image (post 000 §6; VGG19 weights optional)"
    )
    if "style-transfer" in needs:
        _add_style_transfer_flags(st)
    return parser


def _add_style_transfer_flags(parser: argparse.ArgumentParser) -> None:
    """`style-transfer`: its experiment's Config fields, where to write, the cache."""
    _add_config_flags(parser, EXPERIMENTS["style-transfer"].config)
    parser.add_argument("--out", type=Path, default=Path("stylized.png"),
                        help="where to write the result PNG (default: stylized.png)")  # fmt: skip
    parser.add_argument(
        "--save-vgg-npz", type=Path, default=None, metavar="PATH",
        help="also write the converted VGG19 weights as .npz (usable without torch)",
    )  # fmt: skip
    _add_cache_flags(parser)


def _enable_cache(args: argparse.Namespace) -> None:
    """Points JAX's persistent compilation cache where the flags or the environment say."""
    if getattr(args, "no_cache", False):
        return
    try:
        cache.enable_compilation_cache(getattr(args, "cache_dir", None))
    except OSError as err:  # an unwritable folder costs speed, not the run
        print(f"jaxunsup: compilation cache off ({err}); pass --cache-dir DIR or --no-cache",
              file=sys.stderr)  # fmt: skip


def _keep_lost_interrupts() -> None:
    """Python drops a Ctrl-C that lands in a garbage-collector callback (JAX has one) with an
    "Exception ignored" traceback and runs on; this hook hands it back to the main thread."""
    previous = sys.unraisablehook
    if getattr(previous, "keeps_interrupts", False):
        return

    def hook(unraisable):
        if issubclass(unraisable.exc_type, KeyboardInterrupt):  # later, once out of the hook
            threading.Timer(0.1, _thread.interrupt_main).start()
        else:
            previous(unraisable)

    hook.keeps_interrupts = True
    sys.unraisablehook = hook


def _config(args: argparse.Namespace, exp: Experiment, preset: str = "default"):
    """`exp`'s Config for `preset`, with the fields the command line set."""
    names = {f.name for f in dataclasses.fields(exp.config)}
    overrides = {k: v for k, v in vars(args).items() if k in names}
    return exp.make_config(preset, **overrides)


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """`run`, `reproduce` or `style-transfer`; user errors raise (main reports them)."""
    if args.command == "style-transfer":
        from jaxunsup import style_transfer

        cfg = _config(args, EXPERIMENTS["style-transfer"])
        style_transfer.stylize_to_file(cfg, args.out, args.save_vgg_npz)
        return 0
    check_workdir(args.workdir, "--workdir")
    if args.command == "run":
        _start_processes(args)
        exp = EXPERIMENTS[args.experiment]
        results = exp.run(_config(args, exp, args.preset), args.workdir)
        print(f"results: {args.workdir / 'results.json'}")
        for row in results.get("table", []):
            print(f"  {row['metric']}: ours {row['ours']}  seed {row.get('seed')}")
        return 0
    from jaxunsup import report

    unknown = set(args.only or ()) - set(EXPERIMENTS)
    if unknown:
        parser.error(f"unknown experiment(s) {sorted(unknown)}; choose from {list(EXPERIMENTS)}")
    summary = report.reproduce(args.workdir, mode=args.mode, only=args.only)
    print(f"report: {summary['report']}")
    return 0 if not summary["failed"] else 1


def main(argv: list[str] | None = None) -> int:
    _keep_lost_interrupts()
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command == "list":
        width = max(map(len, EXPERIMENTS))
        for name, exp in EXPERIMENTS.items():
            print(f"{name:<{width}}  seed {exp.seed:<8}  {exp.summary}")
        return 0
    try:
        _enable_cache(args)  # a bad $JAXUNSUP_CACHE_MAX_BYTES is a ValueError: one line below
        return _run(args, parser)
    except (ValueError, OSError, ImportError) as err:  # FileNotFoundError is an OSError
        print(f"jaxunsup: error: {user_message(err)}", file=sys.stderr)
        return 2
    except FloatingPointError as err:  # training.TrainingDiverged
        print(f"jaxunsup: training stopped: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C: the checkpoints written so far are complete
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # an echo of it must not kill the exit
        resume = "run the same command again to resume"
        then = "no image written" if args.command == "style-transfer" else resume
        print(f"jaxunsup: interrupted; {then}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
