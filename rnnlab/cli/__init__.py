"""The command line: parses arguments and calls library functions, nothing more.

    rnnlab train [options]                 train the character model (the bundled corpus by default)
    rnnlab train classify|tag|forecast ... many-to-one, aligned many-to-many, forecasting
    rnnlab train translate|caption|transcribe ...   encoder-decoder, one-to-many, CTC
    rnnlab translate|caption|transcribe RUN ...     use them
    rnnlab sample RUN [options]            stream text from a character model
    rnnlab predict RUN ...                 any trained model on new inputs
    rnnlab eval RUN ...                    score any trained model
    rnnlab explain RUN                     write the hidden-cell explorer page for a character model
    rnnlab gradients                       gradient flow through time: vanishing, exploding, clipping
    rnnlab experiment memory|exposure      classic claims about RNNs, measured
    rnnlab hello                           the classic "hello" toy, predictions before and after training
    rnnlab data list | fetch NAME...       data sets by name: downloaded, checked, cached

Bad input ends with one line on stderr and exit code 2.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from rnnlab import __version__
from rnnlab.cli import data, inside, run, use
from rnnlab.cli.common import EXIT_BAD_INPUT, Parser
from rnnlab.errors import RnnlabError
from rnnlab.memory import keep_freed_memory
from rnnlab.tasks import TASKS


def build_parser() -> Parser:
    parser = Parser(prog="rnnlab", description="Recurrent neural networks: train, sample, evaluate, look inside.")
    parser.add_argument("--version", action="version", version=f"rnnlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    run.add_parsers(sub)
    use.add_parsers(sub)
    inside.add_parsers(sub)
    data.add_parsers(sub)
    return parser


def with_default_task(argv: list[str]) -> list[str]:
    """``rnnlab train [flags]`` means ``rnnlab train charlm [flags]``."""
    if argv[:1] == ["train"] and (len(argv) == 1 or argv[1] not in TASKS):
        return ["train", "charlm", *argv[1:]]
    return argv


def main(argv: list[str] | None = None) -> int:
    argv = with_default_task(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    keep_freed_memory()  # training steps reuse their buffers instead of faulting fresh pages in (rnnlab/memory.py)
    try:
        return args.func(args)
    except RnnlabError as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        print("rnnlab: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except BrokenPipeError:  # e.g. `rnnlab sample RUN | head`
        sys.stderr.close()
        return 0
    except MemoryError:
        return _fail("out of memory: this needs more than the machine has; try smaller sizes")
    except OSError as e:  # a full disk, a folder without permission...
        where = f"{e.filename}: " if e.filename else ""
        return _fail(f"{where}{e.strerror or e}")
    except Exception as e:  # a bug in rnnlab: one line here, the whole story in a file
        if isinstance(e, RuntimeError) and "memory" in str(e).lower():
            return _fail(f"out of memory: {str(e).splitlines()[0]}")
        log = _write_traceback(getattr(args, "out", None))
        first = str(e).splitlines()[0] if str(e) else ""
        print(f"rnnlab: internal error: {type(e).__name__}: {first} (traceback in {log}; please report it)", file=sys.stderr)
        return 1


def _fail(message: str) -> int:
    print(f"rnnlab: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _write_traceback(run_dir) -> Path:
    """The traceback of the exception being handled, in RUN/crash.log (or a temporary file)."""
    import tempfile
    import traceback

    text = traceback.format_exc()
    folder = Path(run_dir) if run_dir is not None and Path(run_dir).is_dir() else Path(tempfile.gettempdir())
    path = folder / ("crash.log" if folder != Path(tempfile.gettempdir()) else f"rnnlab-crash-{os.getpid()}.log")
    try:
        path.write_text(text)
    except OSError:
        path = Path("(could not be written)")
    return path
