"""The `gpunet` command line: parse arguments, call the library, turn bad input into exit code 2.

gpunet export RUN_DIR             the run's model as .keras (Keras 3) or .onnx
gpunet info                       backend, NumPy and its BLAS, CuPy/CUDA and the device
gpunet data info [NAME]           where each data set is looked for, and where it was found
gpunet data fetch NAME            download and verify a data set into the cache
gpunet data verify                re-check every cached file against its SHA-256
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback

import numpy as np

import gpunet
from gpunet import backend, cli_models, config, distributed, run, run_data, runs
from gpunet.cli_data import SOURCES, cmd_data_fetch, cmd_data_info, cmd_data_verify
from gpunet.datasets import user
from gpunet.datasets.idx import DataError
from gpunet.messages import excerpt

EXIT_BAD_INPUT = 2
BACKEND_CHOICES = ("auto", "numpy", "cupy")


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


def _blas_name() -> str:
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # show_config's layout is not a stable API
        return "unknown"


def _blas_threads() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (install threadpoolctl to see)"
    counts = [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]
    return str(counts[0]) if counts else "unknown"


def cmd_info(args) -> int:
    ranks = distributed.world().describe()
    if not ranks:
        return 0  # an MPI job's rank 0 speaks for every rank
    print(f"gpunet {gpunet.__version__}")
    requested = os.environ.get("GPUNET_BACKEND", "auto")
    print(f"backend: {backend.get_backend()} (GPUNET_BACKEND={requested})")
    print(
        f"numpy {np.__version__}, BLAS {_blas_name()} ({_blas_threads()} threads), "
        f"CPU cores {os.cpu_count()}"
    )
    _print_ranks(ranks)
    cupy, why = backend._load_cupy()
    if cupy is None:
        print(f"cupy: unavailable ({why})")
        return 0
    runtime = cupy.cuda.runtime
    props = runtime.getDeviceProperties(cupy.cuda.Device().id)
    free, total = runtime.memGetInfo()
    print(
        f"cupy {cupy.__version__}, CUDA runtime {runtime.runtimeGetVersion()}, "
        f"driver {runtime.driverGetVersion()}"
    )
    print(
        f"device: {props['name'].decode()}, {total / 2**30:.1f} GiB ({free / 2**30:.1f} GiB free)"
    )
    from gpunet.cuda import gemm

    lt = gemm.load(cupy)
    if lt is None:
        print("cuBLASLt: unavailable (nvmath-python is not installed: the fused step runs "
              "eagerly, without CUDA graphs; pip install nvmath-python)")  # fmt: skip
    else:
        print(f"cuBLASLt: {lt.__name__} (the fused step's GEMMs and CUDA graphs)")
    return 0


def _print_ranks(ranks: list[str]) -> None:
    """The ranks of this job, and the MPI it would use."""
    print("\n".join(ranks))
    try:
        from mpi4py import MPI
    except ImportError:
        print(
            "mpi: mpi4py is not installed (pip install 'gpunet[mpi]' for mpirun -n N gpunet train)"
        )
        return
    library = " ".join(MPI.Get_library_version().splitlines()[0].split())
    print(f"mpi: mpi4py {__import__('mpi4py').__version__}, {library}")


def _resume_config(run_dir: str, overrides: list[str]):
    """The resolved config a run directory keeps: a resumed run continues exactly that run."""
    if not os.path.isfile(os.path.join(run_dir, run.CHECKPOINT)):
        raise UsageError(f"{run_dir}: no {run.CHECKPOINT} there to resume from.")
    if overrides:
        raise UsageError("--set cannot change a run being resumed; it continues its own config.")
    path = os.path.join(run_dir, "config.yaml")
    return config.from_dict(config.load_raw(path), path)


def _first_difference(a, b, path: str = ""):
    """The first key path where two resolved configs differ, with both values; None if equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            found = _first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else key)
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            found = _first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if a == b else (path, a, b)


def _silent(*args, **kwargs) -> None:
    pass


def cmd_train(args) -> int:
    if args.resume:
        given = config.load(args.config).to_dict()
        cfg = _resume_config(args.resume, args.set or [])
        # A resumed run continues its own config; a CONFIG that says otherwise is refused
        # rather than silently ignored (where the results go and the backend may differ).
        kept = cfg.to_dict()
        for ignored in ("output", "backend"):
            given.pop(ignored), kept.pop(ignored)
        difference = _first_difference(given, kept)
        if difference:
            key, new, old = difference
            raise UsageError(
                f"{args.config}: {key} is {excerpt(new)}, the run being resumed has "
                f"{excerpt(old)}; a resumed run keeps its own config: give "
                f"{os.path.join(args.resume, 'config.yaml')}, or start a new run."
            )
    else:
        cfg = config.load(args.config, args.set or [])
    if args.backend:
        cfg.backend = args.backend
    outcome = run.train(cfg, args.config, output=args.output, quiet=args.quiet, resume=args.resume)
    say = print if distributed.world().writes else _silent  # rank 0 speaks for an MPI job
    if outcome.signal is not None and outcome.finished:
        name = signal.Signals(outcome.signal).name
        say(
            f"\n{name}: received while the results were written; they are complete in "
            f"{outcome.run_dir}.",
            file=sys.stderr,
        )
        return 128 + outcome.signal
    if outcome.signal is not None:
        name = signal.Signals(outcome.signal).name
        say(
            f"\n{name}: stopped after the current step; checkpoint written to "
            f"{outcome.checkpoint}.\nResume with: gpunet train {args.config} --resume "
            f"{outcome.run_dir}",
            file=sys.stderr,
        )
        return 128 + outcome.signal
    if outcome.diverged_at is not None:
        epoch, step = outcome.diverged_at
        kept = (
            "no checkpoint yet; the run directory is removed"
            if outcome.checkpoint_epochs is None
            else f"the last good checkpoint ({outcome.checkpoint_epochs} epochs) is kept at "
            f"{outcome.checkpoint}"
        )
        say(
            # batch counted from 0, as the "Batch N: Invalid loss" line above it (Keras's)
            f"error: the loss became NaN or inf in epoch {epoch + 1} at batch {step}; {kept}. "
            "Hint: lower the learning rate, or add clipnorm to the optimizer.",
            file=sys.stderr,
        )
        return 1
    say(f"Run directory: {outcome.run_dir}")
    return 0


def cmd_evaluate(args) -> int:
    if cli_models.is_model_file(args.run_dir):
        model = cli_models.load(args.run_dir, args.backend)
        x, y = cli_models.test_data(args.run_dir, args.data, model)
        batch_size = None
    else:
        cfg, model, _ = run.load_run(args.run_dir, args.backend)
        if args.data is not None:
            if cfg.data.name is not None:
                cfg.data.path = args.data
            else:
                cfg.data.test_path = args.data
        data = run_data.load_data(cfg)
        if data.x_test is None:
            raise UsageError(f"{args.run_dir}: the run has no test data; pass --data FILE.")
        x, y, batch_size = data.x_test, data.y_test, cfg.fit.batch_size
    results = model.evaluate(x, y, batch_size=batch_size, return_dict=True, verbose=0)
    print(" - ".join(f"{name}: {value:.4f}" for name, value in results.items()))
    return 0


def cmd_predict(args) -> int:
    if cli_models.is_model_file(args.run_dir):
        model, batch_size = cli_models.load(args.run_dir, args.backend), None
        x = user.load_features(args.input).astype(np.float32)
    else:
        cfg, model, arrays = run.load_run(args.run_dir, args.backend)
        x = run_data.prepare_inputs(cfg, user.load_features(args.input, cfg.data.encoding), arrays)
        batch_size = cfg.fit.batch_size
    expected = model.input_shape[1:]
    if x.shape[1:] != expected:
        raise UsageError(
            f"{args.input}: inputs have per-sample shape {x.shape[1:]}, the model of "
            f"{args.run_dir} expects {expected}."
        )
    probs = model.predict(x, batch_size=batch_size, verbose=0)  # stdout is the CSV
    header = "predicted," + ",".join(f"p{i}" for i in range(probs.shape[1]))
    lines = [header] + [f"{row.argmax()}," + ",".join(f"{v:.6g}" for v in row) for row in probs]
    text = "\n".join(lines) + "\n"
    if args.output:
        runs.atomic_write(args.output, text.encode())
        print(f"Wrote {len(probs)} predictions to {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def cmd_summary(args) -> int:
    cfg = config.load(args.config, args.set or [])
    if args.backend:
        cfg.backend = args.backend
    run.select_backend(cfg)
    run.build_model(cfg, run_data.input_shape(cfg), args.config).summary()
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors"
    )
    parser = _Parser(
        prog="gpunet",
        description="GPU-accelerated MLP trainer with Keras semantics.",
        epilog="examples:\n  gpunet train configs/quickstart.yaml\n"
        "  gpunet evaluate runs/quickstart-20261122-094349\n  gpunet data info\n"
        "Run `gpunet COMMAND --help` for each command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"gpunet {gpunet.__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    train = commands.add_parser(
        "train",
        parents=[common],
        help="train the model a YAML config describes",
        epilog="examples: gpunet train configs/quickstart.yaml\n"
        "          gpunet train configs/mnist_adam.yaml --set fit.epochs=5",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("config", help="YAML config file")
    train.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config value, e.g. fit.epochs=5 (repeatable)",
    )
    train.add_argument("--backend", choices=BACKEND_CHOICES, help="override backend")
    train.add_argument("--output", help="parent folder of the run directory (default: runs)")
    train.add_argument("--quiet", action="store_true", help="no progress output")
    train.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue an interrupted run from its checkpoint, exactly",
    )
    train.set_defaults(run=cmd_train)
    evaluate = commands.add_parser(
        "evaluate",
        parents=[common],
        help="evaluate a finished run on its test data",
        epilog="example: gpunet evaluate runs/quickstart-20261122-101500",
    )
    evaluate.add_argument("run_dir", help="a finished run's directory, or a .keras model file")
    evaluate.add_argument("--data", help="other test data: a data-set folder or a user file")
    evaluate.add_argument("--backend", choices=BACKEND_CHOICES, help="override backend")
    evaluate.set_defaults(run=cmd_evaluate)
    predict = commands.add_parser(
        "predict",
        parents=[common],
        help="predict with a finished run",
        epilog="example: gpunet predict RUN_DIR --input x.npy --output preds.csv",
    )
    predict.add_argument("run_dir", help="a finished run's directory, or a .keras model file")
    predict.add_argument("--input", required=True, help="inputs, .npy or .csv")
    predict.add_argument("--output", help="CSV of predictions (default: standard output)")
    predict.add_argument("--backend", choices=BACKEND_CHOICES, help="override backend")
    predict.set_defaults(run=cmd_predict)
    export = commands.add_parser(
        "export",
        parents=[common],
        help="write a finished run's model as a Keras 3 .keras file or as ONNX",
        epilog="example: gpunet export RUN_DIR --format onnx --output model.onnx",
    )
    export.add_argument("run_dir")
    export.add_argument("--format", choices=("keras", "onnx"), default="keras")
    export.add_argument("--output", help="the file to write (default: RUN_DIR/model.FORMAT)")
    export.add_argument("--backend", choices=BACKEND_CHOICES, help="override backend")
    export.set_defaults(run=cli_models.cmd_export)
    summary = commands.add_parser(
        "summary",
        parents=[common],
        help="print the model table of a config",
        epilog="example: gpunet summary configs/mnist_mlp.yaml",
    )
    summary.add_argument("config")
    summary.add_argument("--set", action="append", metavar="KEY=VALUE")
    summary.add_argument("--backend", choices=BACKEND_CHOICES, help="override backend")
    summary.set_defaults(run=cmd_summary)
    info = commands.add_parser(
        "info",
        parents=[common],
        help="backend, BLAS, CuPy/CUDA and device",
        epilog="example: gpunet info",
    )
    info.set_defaults(run=cmd_info)
    data = commands.add_parser("data", help="find, download and verify data sets")
    data_commands = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    for verb, command, text, example in (
        ("info", cmd_data_info, "where a data set is looked for", "gpunet data info mnist"),
        ("fetch", cmd_data_fetch, "download a data set ahead of time", "gpunet data fetch mnist"),
        ("verify", cmd_data_verify, "re-check cached files", "gpunet data verify"),
    ):
        sub = data_commands.add_parser(
            verb, help=text, epilog=f"example: {example}", parents=[common]
        )
        sub.add_argument(
            "name", nargs="?" if verb != "fetch" else None, help=f"one of {', '.join(SOURCES)}"
        )
        if verb != "verify":
            sub.add_argument("--path", help="a folder holding the files")
        sub.set_defaults(run=command)
    return parser


def _bad_input_line(exc: BaseException) -> str:
    """The one line a fault the user can fix gets."""
    if isinstance(exc, MemoryError):  # a size asked for that cannot fit: say how much
        return f"error: not enough memory: {exc}"
    if isinstance(exc, OSError):  # an unwritable output folder, a full disk
        where = f"{exc.filename}: " if exc.filename else ""
        return f"error: {where}{exc.strerror or exc}"
    message = str(exc).replace("\n", " ")
    return message if message.startswith("gpunet") else f"error: {message}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    if distributed.launched_rank() != 0:
        # An MPI job's rank 0 prints for every rank (bars, callbacks' lines, results); the
        # others keep stderr, for what is their own.
        sys.stdout = open(os.devnull, "w")  # for the process's life
    try:
        args = build_parser().parse_args(argv)
        return args.run(args)
    except (
        UsageError,
        DataError,
        ValueError,
        backend.BackendError,
        run.TrainingError,
        distributed.DistributedError,
        MemoryError,
        OSError,
    ) as exc:
        if debug:  # the traceback, and still the exit code the README promises
            traceback.print_exc()
        # Every rank of an MPI job reads the same config and data: rank 0 alone says what is
        # wrong with them; a rank's own trouble (its device, its files) it says itself.
        rank = distributed.launched_rank()
        if rank == 0:
            print(_bad_input_line(exc), file=sys.stderr)
        elif not isinstance(exc, (UsageError, DataError, ValueError)):
            print(f"rank {rank}: {_bad_input_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("\ngpunet: interrupted; nothing was written.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
