"""The ``xpnet`` command: train, evaluate and use MLPs, and check backend parity.

::

    xpnet train [DATASET] [options]      train an MLP or a CNN (default: MLP, UCI digits)
    xpnet eval CHECKPOINT [DATASET]      accuracy and loss of a saved model
    xpnet predict CHECKPOINT --data PATH predictions for new inputs
    xpnet parity ...                     compare two backends step by step

Also available as ``python -m xpnet``. Errors print one line, ``xpnet: error: ...``, on
stderr and exit with status 2 (bad usage) or 1 (anything that fails at run time); pass
``--debug`` to see the traceback instead. See docs/cli.md for every option.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from . import cli_train, cli_use
from ._cli_common import (
    OPTIMIZERS,
    PROG,
    CLIError,
    _dataset_names,
    _UsageError,
    channel_sizes,
    console_logging,
    float_in,
    hidden_sizes,
    nonneg_int,
    positive_int,
)
from .cli_train import ACTIVATIONS, DATASET_DEFAULTS, SCHEDULERS
from .models import INITS

__all__ = ["main", "build_parser", "DATASET_DEFAULTS", "CLIError"]


# --------------------------------------------------------------------------- argparse


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line: ``xpnet: error: ... (see --help)``."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{message} (see '{self.prog} --help')")


def _backend_options(p: argparse.ArgumentParser, *, with_dtype: bool = True) -> None:
    g = p.add_argument_group("backend")
    g.add_argument("--backend", default=None, metavar="NAME",
                   help="array backend: numpy (default), torch, cupy, array_api_strict, jax")
    g.add_argument("--device", default=None, metavar="DEV",
                   help="device on that backend, e.g. cuda:0 (torch), 0 (cupy), device1 "
                        "(array_api_strict); default the backend's default device")
    if with_dtype:
        g.add_argument("--dtype", default=None, choices=("float32", "float64"),
                       help="floating-point precision (default float32; a checkpoint's own "
                            "dtype when resuming)")


def build_parser() -> argparse.ArgumentParser:
    """The ``xpnet`` argument parser with its subcommands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true",
                        help="show the full traceback on errors instead of one line")

    parser = _Parser(
        prog=PROG,
        description="Train, evaluate and use multilayer perceptrons on any Array API backend "
                    "(NumPy, PyTorch, CuPy, array-api-strict).",
        epilog="Run 'xpnet COMMAND --help' for a command's options; docs/cli.md has examples.",
        parents=[common],
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"xpnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    # ---------------------------------------------------------------- train
    t = sub.add_parser(
        "train", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        help="train an MLP or a CNN on a built-in dataset or a data file",
        description="Train an MLP and report its test accuracy. Options left out take the "
                    "dataset's tuned defaults (see docs/cli.md); with --resume they come from "
                    "the checkpoint.",
        epilog="examples:\n  xpnet train                      # digits, ~97-98% test accuracy\n"
               "  xpnet train digits --model cnn       # ~99% test accuracy\n"
               "  xpnet train moons --plot moons.png\n"
               "  xpnet train --data train.csv --hidden 64,32 --epochs 50\n"
               "  xpnet train digits --epochs 4 --save run.npz && "
               "xpnet train --resume run.npz --epochs 8",
    )
    t.add_argument("dataset", nargs="?", default=None, metavar="DATASET",
                   help="built-in dataset (default digits): " + ", ".join(_dataset_names()))
    d = t.add_argument_group("data")
    d.add_argument("--data", default=None, metavar="PATH",
                   help="train on a file instead: .csv (last column = label/target), .npz "
                        "(arrays X and y), an IDX file pair, or an MNIST directory")
    d.add_argument("--task", default=None, choices=("classification", "regression"),
                   help="what --data holds (default: classification when the labels are "
                        "integers, else regression)")
    d.add_argument("--test-size", type=float_in(0.0, 1.0, lo_open=False), default=None,
                   metavar="FRAC",
                   help="fraction held out for testing, stratified by class (default 0.2; 0 "
                        "tests on the training data, the default for the 4-sample logic gates). "
                        "Ignored for an MNIST directory with t10k files: those are the test set")
    d.add_argument("--val-size", type=float_in(0.0, 1.0, lo_open=False), default=None,
                   metavar="FRAC",
                   help="fraction of the training data held out for validation, stratified by "
                        "class and seeded by --seed: the val_* numbers of every epoch and what "
                        "--patience watches (default 0.1; 0 disables, the default for the logic "
                        "gates). The test set is evaluated once, at the end")
    d.add_argument("--no-standardize", dest="standardize", action="store_false", default=None,
                   help="do not standardize features (default: zero mean, unit variance, "
                        "fitted on the training split)")
    m = t.add_argument_group("model")
    m.add_argument("--model", dest="arch", default=None, choices=("mlp", "cnn"),
                   help="mlp (default): fully connected; cnn: conv-relu-maxpool stages and a "
                        "dense head, for image data (digits 1x8x8, MNIST 1x28x28)")
    m.add_argument("--channels", type=channel_sizes, default=None, metavar="C[,C...]",
                   help="--model cnn: output channels of each convolution stage (default 32,64)")
    m.add_argument("--hidden", type=hidden_sizes, default=None, metavar="W[,W...]",
                   help="hidden layer widths, e.g. 128 or 256,128; 'none' for no hidden "
                        "layer (default: per dataset, 256 for digits)")
    m.add_argument("--activation", default=None, choices=ACTIVATIONS,
                   help="hidden activation (default: per dataset, relu for digits)")
    m.add_argument("--init", default=None, choices=INITS,
                   help="weight initialization (default torch: U(±1/sqrt(fan_in)))")
    o = t.add_argument_group("optimization")
    o.add_argument("--optimizer", default=None, choices=OPTIMIZERS,
                   help="optimizer; momentum is SGD with momentum 0.9 (default adam)")
    o.add_argument("--lr", type=float_in(0.0, None, lo_open=True), default=None,
                   help="learning rate (default: per dataset and optimizer; 2e-3 for digits "
                        "with adam)")
    o.add_argument("--weight-decay", type=float_in(0.0, None, lo_open=False), default=None,
                   metavar="WD", help="L2 penalty (decoupled for adamw; default 0)")
    o.add_argument("--scheduler", default=None, choices=SCHEDULERS,
                   help="learning-rate schedule over the epochs (default none)")
    o.add_argument("--batch-size", type=positive_int, default=None, metavar="N",
                   help="samples per mini-batch (default: per dataset, 32 for digits)")
    o.add_argument("--epochs", type=positive_int, default=None, metavar="N",
                   help="TOTAL number of epochs, counting those of a resumed checkpoint "
                        "(default: per dataset, 20 for digits)")
    o.add_argument("--stop-after", type=positive_int, default=None, metavar="N",
                   help="stop this run after epoch N of --epochs (the schedule still spans "
                        "--epochs); continue later with --resume")
    o.add_argument("--patience", type=nonneg_int, default=None, metavar="N",
                   help="early stopping: stop after N epochs in a row without a lower val_loss "
                        "(the training loss with --val-size 0) and restore the best epoch's "
                        "weights (default: train all --epochs)")
    o.add_argument("--seed", type=nonneg_int, default=None,
                   help="seed for the split, the initial weights and the shuffling (default 0)")
    _backend_options(t)
    r = t.add_argument_group("checkpoints and output")
    r.add_argument("--save", default=None, metavar="CKPT",
                   help="save model, optimizer and RNG state to CKPT (.npz) after every epoch")
    r.add_argument("--resume", default=None, metavar="CKPT",
                   help="continue the run saved in CKPT up to --epochs in total; ends "
                        "bit-identically where the uninterrupted run ends")
    r.add_argument("--plot", default=None, metavar="PNG",
                   help="write loss/accuracy curves (and the decision boundary for 2-D data) "
                        "to this image: .png, .pdf, .svg, ... (needs matplotlib; checked "
                        "before training)")
    r.add_argument("--metrics-json", default=None, metavar="PATH",
                   help="write val_loss, val_accuracy, test_loss, test_accuracy, train_loss, "
                        "epochs, seconds and the per-epoch history as JSON")
    r.add_argument("--log-every", type=positive_int, default=None, metavar="N",
                   help="also report the running loss every N steps (one host sync each; "
                        "default: once per epoch)")
    r.add_argument("-q", "--quiet", action="store_true",
                   help="print only the final result line (and warnings)")
    t.set_defaults(func=cli_train.run)

    # ---------------------------------------------------------------- eval
    e = sub.add_parser(
        "eval", parents=[common],
        help="accuracy and loss of a saved model",
        description="Evaluate a checkpoint written by 'xpnet train --save'. Without data "
                    "arguments it re-creates the training run's test split (same seed, test "
                    "size and standardization) and evaluates on it.",
    )
    e.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint file (.npz)")
    e.add_argument("dataset", nargs="?", default=None, metavar="DATASET",
                   help="built-in dataset to evaluate on (default: the checkpoint's)")
    e.add_argument("--data", default=None, metavar="PATH",
                   help="evaluate on a data file (.csv, .npz, IDX, MNIST directory)")
    e.add_argument("--split", default=None, choices=("test", "train", "all"),
                   help="which samples: the training run's test or train split, or all (default "
                        "test for the checkpoint's own data, all for other data)")
    e.add_argument("--task", default=None, choices=("classification", "regression"),
                   help="what the model predicts, for a checkpoint that does not record it "
                        "(default: the checkpoint's, else the dataset's)")
    e.add_argument("--batch-size", type=positive_int, default=256, metavar="N",
                   help="evaluation batch size (default 256)")
    e.add_argument("--metrics-json", default=None, metavar="PATH",
                   help="write the results as JSON")
    _backend_options(e, with_dtype=False)
    e.set_defaults(func=cli_use.cmd_eval)

    # ---------------------------------------------------------------- predict
    pr = sub.add_parser(
        "predict", parents=[common],
        help="predictions of a saved model for new inputs",
        description="Predict with a checkpoint written by 'xpnet train --save'. Inputs are "
                    "standardized with the training run's statistics. Classification prints "
                    "class labels, regression the predicted values.",
    )
    pr.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint file (.npz)")
    pr.add_argument("--data", required=True, metavar="PATH",
                    help="inputs: .csv (features, optionally followed by a label column), "
                         ".npz (array X), .npy, IDX or MNIST directory; or the name of a "
                         "built-in dataset (its features), e.g. --data digits")
    pr.add_argument("--output", "-o", default=None, metavar="PATH",
                    help="write predictions to .csv or .npy (default: print one per line)")
    pr.add_argument("--proba", action="store_true",
                    help="classification: also write the class probabilities (softmax)")
    pr.add_argument("--task", default=None, choices=("classification", "regression"),
                    help="what the model predicts, for a checkpoint that does not record it "
                         "(default: the checkpoint's, else classification for a classifier "
                         "head; see docs/cli.md)")
    pr.add_argument("--batch-size", type=positive_int, default=256, metavar="N",
                    help="prediction batch size (default 256)")
    _backend_options(pr, with_dtype=False)
    pr.set_defaults(func=cli_use.cmd_predict)

    # ---------------------------------------------------------------- export
    ex = sub.add_parser(
        "export", parents=[common],
        help="write a checkpoint's weights as .safetensors, under torch's names",
        description="Write the model weights of a checkpoint (any xpnet checkpoint: 'xpnet "
                    "train --save', ModelCheckpoint, save_checkpoint) to a .safetensors file "
                    "with torch's state_dict names, so the equivalent torch.nn model loads "
                    "it with model.load_state_dict(safetensors.torch.load_file(OUT)). Needs "
                    "the safetensors package.",
    )
    ex.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint file (.npz)")
    ex.add_argument("output", metavar="OUT", help="the .safetensors file to write")
    ex.set_defaults(func=cli_use.cmd_export)

    # ---------------------------------------------------------------- parity
    parity = _parity_module()
    if parity is not None:
        n_before = len(sub.choices)
        parity.add_parser(sub)
        new = [sub.choices[k] for k in list(sub.choices)[n_before:]]
        for p in new:
            if p.get_default("func") is None:
                p.set_defaults(func=_cmd_parity)
            if not any("--debug" in a.option_strings for a in p._actions):
                p.add_argument("--debug", action="store_true",
                               help="show the full traceback on errors instead of one line")
    return parser


def _parity_module() -> Any:
    import importlib

    try:
        return importlib.import_module(f"{__package__}.cli_parity")
    except ModuleNotFoundError as exc:
        if exc.name == f"{__package__}.cli_parity":
            return None  # not shipped in this build
        raise


def _cmd_parity(args: argparse.Namespace) -> int:
    from . import cli_parity

    rc = cli_parity.run(args)
    return 0 if rc is None else int(rc)


# --------------------------------------------------------------------------- entry point


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, KeyError) and text.startswith(("'", '"')):
        text = text[1:-1]
    if isinstance(exc, FileNotFoundError) and exc.filename and exc.strerror:
        text = f"{exc.strerror}: {exc.filename!r}"
    return " ".join(text.split())


def _library_errors() -> tuple[type[BaseException], ...]:
    errs: list[type[BaseException]] = [CLIError, ValueError, TypeError, ImportError, OSError,
                                       RuntimeError, ArithmeticError]
    try:
        from .checkpoint import CheckpointError

        errs.append(CheckpointError)
    except ImportError:
        pass
    return tuple(errs)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``xpnet`` command line; return the exit status (see :func:`_main`).

    Under ``mpiexec`` a failing rank aborts the whole job (``MPI_Abort``) after printing
    its error, so the other ranks never wait for it in a collective.
    """
    from .distributed import exit_status

    return exit_status(_main(argv))


def _main(argv: Sequence[str] | None = None) -> int:
    """Run the ``xpnet`` command line; return the exit status.

    Parameters
    ----------
    argv
        Arguments without the program name (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 1 for a run-time failure, 2 for bad usage, 130 when interrupted.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if getattr(args, "func", None) is None:
            parser.print_help(sys.stderr)
            return 2
        with console_logging(quiet=bool(getattr(args, "quiet", False))):
            return int(args.func(args) or 0)
    except _UsageError as exc:
        if debug:
            raise
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `xpnet predict ... | head`: the reader left; stop quietly, as other Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except SystemExit:
        raise
    except MemoryError as exc:
        if debug:
            raise
        print(f"{PROG}: error: out of memory ({_one_line(exc) or 'MemoryError'}). Hint: use "
              f"narrower --hidden layers, a smaller --batch-size, or less data", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the CLI never shows a traceback without --debug
        if debug:
            raise
        if isinstance(exc, _library_errors()):
            print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        else:
            print(f"{PROG}: error: unexpected {type(exc).__name__}: {_one_line(exc)} "
                  f"(rerun with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
