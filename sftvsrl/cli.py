"""The ``sftvsrl`` command: ``sftvsrl data|play|sft|rl|eval|study``.

Each subcommand lives in its own module with ``add_arguments(parser)`` and ``run(args)``;
modules are imported only when their command runs, so ``sftvsrl play`` does not pay for
importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from sftvsrl import __version__
from sftvsrl.errors import UserError

DESCRIPTION = (
    "SFT memorizes, RL generalizes: data, training, evaluation and play for GeneralPoints and V-IRL."
)
EPILOG = "Run 'sftvsrl COMMAND --help' for the options of a command (each shows its defaults)."

COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("sftvsrl.data.cli", "write expert demonstrations as prompt/completion JSONL"),
    "play": ("sftvsrl.envs.play", "play an environment in the terminal"),
    "sft": ("sftvsrl.training.sft_cli", "supervised fine-tuning on expert data"),
    "rl": ("sftvsrl.training.ppo_cli", "multi-turn PPO or GRPO from a checkpoint"),
    "eval": ("sftvsrl.evaluation.cli", "evaluate a model on an environment"),
    "study": ("sftvsrl.study.cli", "run the SFT-vs-RL study end to end"),
    "export": ("sftvsrl.integrations.export", "write a task's episodes as a verl (parquet) or JSONL dataset"),
}


VERBOSE_HELP = "show Hugging Face's own progress bars and log messages (default: hidden)"


def quiet_hugging_face(verbose: bool) -> None:
    """Hide Hugging Face's "Loading weights" / "Writing model shards" bars and its advisory
    messages unless ``verbose``; our own progress lines say what is happening. Its warnings
    (e.g. a prompt longer than the model's positions) stay. Set through the environment, so
    processes started from here (torchrun) inherit it."""
    if verbose:
        return
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    if "transformers" in sys.modules:  # imported already: the variables are read at import
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def build_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, object | None]:
    parser = argparse.ArgumentParser(prog="sftvsrl", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    module = None
    rest = [a for a in argv if a != "--verbose"]  # `sftvsrl --verbose sft ...` names sft too
    wanted = rest[0] if rest and not rest[0].startswith("-") else None
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        # Also after the command (`sftvsrl sft --verbose ...`); SUPPRESS keeps the global value.
        p.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
        if name == wanted:
            module = importlib.import_module(module_name)
            if hasattr(module, "TASK_CLI"):  # two-level: only the named task's module is imported
                module.add_arguments(p, rest[1:])
            else:
                module.add_arguments(p)
    return parser, module


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, module = build_parser(argv)
    args = parser.parse_args(argv)
    if module is None:
        parser.print_help()
        return 0 if not argv else 2
    quiet_hugging_face(args.verbose)
    try:
        return int(module.run(args) or 0)
    except (UserError, OSError) as exc:  # OSError: a full disk, a read-only folder (names the file)
        print(f"sftvsrl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sftvsrl {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        close_process_group()


def close_process_group() -> None:
    """Destroy torch.distributed's default group, where a launch made one, before the
    interpreter shuts down: a process that exits with a live gloo group races gloo's worker
    threads against finalisation and can abort ("terminate called without an active
    exception"), failing a run that had finished."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
