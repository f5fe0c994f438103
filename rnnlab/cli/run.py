"""The commands every task shares, dispatched through the task registry:

rnnlab train NAME [flags]      flags generated from the task's options (model, data, training)
rnnlab eval RUN [flags]        scores of any run: its own test split, or the data the flags name
rnnlab predict RUN [INPUT...]  any run on new inputs
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import sys
from pathlib import Path

from rnnlab import checkpoint
from rnnlab import distributed as dist
from rnnlab.cli.common import Parser
from rnnlab.cli.flags import add_config_flags, given
from rnnlab.config import field_types
from rnnlab.data import catalog
from rnnlab.device import describe, resolve_device
from rnnlab.errors import ConfigError, RnnlabError
from rnnlab.io import atomic_write
from rnnlab.tasks import TASKS, load, make_options, train
from rnnlab.tasks.base import default_options, default_out

TITLES = {"model": "model", "data": "data", "train": "training", "extras": "after training"}
BUDGET = ("train.max_steps", "train.max_minutes")
PREDICT_FLAGS = ("csv", "text_column", "ts", "beam", "length", "seed")


def add_parsers(sub) -> None:
    train_parser = sub.add_parser(
        "train",
        help="train a model (the character language model by default)",
        description="Train a model. `rnnlab train [flags]` trains the character language model (charlm); "
        "see `rnnlab train charlm --help`, `rnnlab train classify --help` and so on.",
    )
    tasks = train_parser.add_subparsers(dest="task", required=True, parser_class=Parser)
    for task in TASKS.values():
        p = tasks.add_parser(task.name, help=task.help, description=task.description)
        flags = {}
        types = field_types(task.Options)
        for part, default in default_options(task).items():
            flags.update(add_config_flags(p, types[part], part, default, TITLES[part], bare=catalog.BARE))
        if task.Extras is not None:
            flags.update(add_config_flags(p, task.Extras, "extras", None, TITLES["extras"]))
        run = p.add_argument_group("run")
        run.add_argument(
            "--out",
            type=Path,
            metavar="DIR",
            help=f"run folder (default: runs/{task.name}, or runs/{task.name}-2... if taken)",
        )
        run.add_argument("--resume", action="store_true", help="continue the run saved in --out")
        run.add_argument("--quiet", action="store_true", help="no progress bar")
        add_device_flag(run)
        run.add_argument(
            "--workers", type=int, default=0, metavar="N", help="processes that make batches ahead (audio, images)"
        )
        p.set_defaults(func=cmd_train, task_object=task, flags=flags)

    e = sub.add_parser(
        "eval",
        help="score a trained model",
        description="Score a run of any kind on its own test split (the character model: its validation text), or on "
        "the data the flags name.",
    )
    e.add_argument("run", metavar="RUN", help="checkpoint folder")
    add_device_flag(e)
    seen: set[str] = set()
    for task in TASKS.values():
        if task.EvalData is not None:
            fresh = {f.name for f in dataclasses.fields(task.EvalData)} - seen  # kinds share flags of one name
            seen.update(fresh)
            add_config_flags(e, task.EvalData, "eval", only=fresh)
    e.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "predict",
        help="use a trained model on new inputs",
        description="Character model: continue each text. Classifier: texts as arguments, --file (one per line), --csv "
        "(a text column) or --ts. Tagger: a sentence as arguments (word or word/POS). Forecaster: the next values "
        "after the end of its series, or of --csv. Translator: sentences. Captioner: image files. Transcriber: wav files.",
    )
    p.add_argument("run", metavar="RUN", help="checkpoint folder")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="texts, words, sentences or files, by the kind of run")
    p.add_argument("--file", metavar="FILE", help="a UTF-8 file of inputs, one per line")
    p.add_argument("--csv", metavar="FILE", help="classifier: a CSV of texts; forecaster: a series")
    p.add_argument("--text-column", metavar="C", default="text", help="text column of --csv")
    p.add_argument("--ts", metavar="FILE", help="classifier: UEA .ts series")
    p.add_argument(
        "--beam", type=int, metavar="K", help="translator, captioner, transcriber: beam width (default: the run's)"
    )
    p.add_argument("--length", type=int, default=200, metavar="N", help="character model: characters to continue each text")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="character model: random seed of the continuation")
    add_device_flag(p)
    p.set_defaults(func=cmd_predict)


def add_device_flag(parser) -> None:
    parser.add_argument(
        "--device",
        default="auto",
        metavar="D",
        help="auto (CUDA, then Apple's MPS, then the CPU), cpu, cuda, cuda:N or mps",
    )


def cmd_train(args) -> int:
    task = args.task_object
    device = resolve_device(args.device)
    main_process = dist.world().main
    if main_process:
        print(describe(device), flush=True)
    if args.resume:
        fixed = [
            flag
            for dest, flag in args.flags.items()
            if hasattr(args, dest) and dest not in BUDGET and not dest.startswith("extras.")
        ]
        if fixed:
            raise RnnlabError(f"{', '.join(fixed)} cannot change when resuming: the run's saved settings are used")
        budget = given(args, "train")
        out = args.out or Path("runs") / task.name
        trained = train(
            task,
            None,
            out,
            resume=True,
            budget=_budget(budget),
            progress=not args.quiet,
            device=device,
            workers=args.workers,
        )
    else:
        options = make_options(task, **{part: given(args, part) for part in ("model", "data", "train")})
        out = args.out or default_out(task.name)
        trained = train(task, options, out, progress=not args.quiet, device=device, workers=args.workers)
    if not main_process:
        return 0  # rank 0 reports
    extras = task.Extras.from_dict(given(args, "extras")) if task.Extras is not None else None
    result = trained.result
    if result.interrupted is not None:
        command = "rnnlab train" + ("" if task.name == "charlm" else f" {task.name}")
        print(
            f"rnnlab: stopped by signal {result.interrupted}; saved {out} at step {result.step}; "
            f"continue with: {command} --out {out} --resume",
            file=sys.stderr,
        )
        return 128 + result.interrupted
    print(task.summary(out, result))
    if trained.test is not None:
        atomic_write(
            Path(out) / "test_scores.json",
            json.dumps(checkpoint.finite_json(task.scores_json(trained.test)), indent=2).encode(),
        )
    task.finish(trained, extras)
    return 0


def use_device(name: str):
    """The device of a command whose output others may read: named on stderr unless it is the CPU."""
    device = resolve_device(name)
    if device.type != "cpu":
        print(f"rnnlab: {describe(device)}", file=sys.stderr)
    return device


def _budget(train_flags: dict) -> tuple | None:
    if not ({"max_steps", "max_minutes"} & set(train_flags)):
        return None
    return train_flags.get("max_steps"), train_flags.get("max_minutes")


def cmd_eval(args) -> int:
    device = resolve_device(args.device)
    print(describe(device), flush=True)
    run = load(args.run, device=device)
    task = run.task
    data = given(args, "eval")
    accepted = {f.name for f in dataclasses.fields(task.EvalData)} if task.EvalData else set()
    refused = sorted(set(data) - accepted)
    if refused:
        raise ConfigError(
            f"{args.run} holds a {task.kind!r} model, which eval does not read --{refused[0].replace('_', '-')} for"
        )
    data = {k: catalog.resolve(k, v) for k, v in data.items()}  # a data set's name reads the cache
    print(task.format_scores(None, task.evaluate(run, task.EvalData.from_dict(data) if data else None)))
    return 0


def cmd_predict(args) -> int:
    from rnnlab.data.text import read_text

    run = load(args.run, device=use_device(args.device))
    task = run.task
    inputs = list(args.inputs)
    if args.file:
        inputs += [line for line in read_text(args.file).splitlines() if line.strip()]
    accepted = inspect.signature(task.predict).parameters
    options = {}
    for name in PREDICT_FLAGS:
        value = catalog.resolve(name, getattr(args, name))
        if name in accepted:
            options[name] = value
        elif name in ("csv", "ts", "beam") and value is not None:
            raise ConfigError(
                f"{args.run} holds a {task.kind!r} model, which predict does not read --{name.replace('_', '-')} for"
            )
    for prediction in task.predict(run, inputs, **options):
        print(task.format_prediction(prediction))
    return 0
