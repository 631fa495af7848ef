"""What every benchmark writes beside its numbers, and how it writes them.

``provenance()`` gives the device, versions, commit, command and date the project's
standards ask for beside every figure; ``emit`` prints a result and writes it as JSON when
``--out`` names a file. Imported by the scripts beside it (``sys.path`` holds their folder
when they run as scripts).
"""

import json
import os
import platform
import subprocess
import sys
import time


def provenance() -> dict:
    """The machine, versions, commit, command line and date of this run."""
    import jax

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=os.path.dirname(os.path.abspath(__file__)))
    return {"device": jax.devices()[0].device_kind, "backend": jax.default_backend(),
            "cores": os.cpu_count(), "machine": platform.machine(),
            "python": platform.python_version(), "jax": jax.__version__,
            "commit": commit.stdout.strip() or None,
            "command": " ".join(["python", os.path.relpath(sys.argv[0]), *sys.argv[1:]]),
            "date": time.strftime("%Y-%m-%d")}


def emit(result: dict, out: str | None) -> None:
    """Prints ``result`` as JSON and writes it to ``out`` (when given)."""
    print(json.dumps(result, indent=1))
    if out:
        with open(out, "w") as f:
            json.dump(result, f, indent=1)
