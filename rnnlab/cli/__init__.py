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

Bad input ends with one line on stderr and exit code 2.
"""

from __future__ import annotations

import signal
import sys

from rnnlab.cli import inside, run, use
from rnnlab.cli.common import EXIT_BAD_INPUT, Parser
from rnnlab.errors import RnnlabError
from rnnlab.tasks import TASKS


def build_parser() -> Parser:
    parser = Parser(prog="rnnlab", description="Recurrent neural networks: train, sample, evaluate, look inside.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    run.add_parsers(sub)
    use.add_parsers(sub)
    inside.add_parsers(sub)
    return parser


def with_default_task(argv: list[str]) -> list[str]:
    """``rnnlab train [flags]`` means ``rnnlab train charlm [flags]``."""
    if argv[:1] == ["train"] and (len(argv) == 1 or argv[1] not in TASKS):
        return ["train", "charlm", *argv[1:]]
    return argv


def main(argv: list[str] | None = None) -> int:
    argv = with_default_task(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except RnnlabError as e:
        print(f"rnnlab: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("rnnlab: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except BrokenPipeError:  # e.g. `rnnlab sample RUN | head`
        sys.stderr.close()
        return 0
