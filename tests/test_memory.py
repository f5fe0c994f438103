"""rnnlab/memory.py: the allocator setting rnnlab's commands make, and its switch."""

import os
import subprocess
import sys

import pytest

SCRIPT = "from rnnlab.memory import keep_freed_memory; print(keep_freed_memory(), keep_freed_memory())"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
@pytest.mark.parametrize(("value", "expected"), [("1", "True True"), ("0", "False False")])
def test_freed_memory_is_kept_unless_switched_off(value, expected):
    env = {**os.environ, "RNNLAB_KEEP_MEMORY": value}
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == expected, result.stderr
