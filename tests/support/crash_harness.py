"""Fault injection: one real training process per crash point, each killed (SIGKILL) at that point.

    python tests/support/crash_harness.py '{"argv": [..., "{out}", ...], "points": [1, 2, ...], "root": DIR}'

For every k in ``points`` a child process is forked that runs ``rnnlab.cli.main(argv)`` into
DIR/k{k} with RNNLAB_CRASH_AT=k, so that it kills itself at the k-th crash point of rnnlab.io
(inside a save: a half-written temporary, a file renamed, the manifest replaced, a link...). Forking
a parent that has imported rnnlab but never run a torch operation costs milliseconds per kill where
starting Python would cost seconds. Prints {k: exit code} as JSON (-9: killed as asked).
"""

import json
import os
import sys

import matplotlib.figure  # noqa: F401  (imported once here rather than in every child:
import torch._dynamo  # noqa: F401  torch.optim imports it, 1.7 s each time)
import torch.utils.tensorboard  # noqa: F401

from rnnlab.cli import main  # imports torch; no torch operation runs in this parent


def run(argv: list[str], k: int) -> int:
    pid = os.fork()
    if pid == 0:
        os.environ["RNNLAB_CRASH_AT"] = str(k)
        import torch

        torch.set_num_threads(1)
        sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115
        os._exit(main(argv))
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    results = {}
    for k in spec["points"]:
        out = os.path.join(spec["root"], f"k{k}")
        results[k] = run([a.replace("{out}", out) for a in spec["argv"]], k)
    print(json.dumps(results))
