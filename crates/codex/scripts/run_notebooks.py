"""Execute the Codex's notebooks cell by cell with the evcxr kernel.

Usage: python run_notebooks.py NOTEBOOK.ipynb...

A real Jupyter client (nbclient) starts the `rust` kernel (evcxr) in the
notebook's own directory, runs every cell in order and fails on the first
cell error. The notebooks on disk are not modified: outputs stay out of git. With
CODEX_NOTEBOOK_OUT=DIR, the executed copies (with outputs) are written there,
for a person to read.
Compiled dependencies are shared between notebooks through evcxr's cache
(each notebook's first cell sets `:cache`), so only the first is slow.
"""

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

CELL_TIMEOUT_S = 1800  # a cold first cell compiles candle


def main(paths):
    failures = 0
    for path in map(Path, paths):
        nb = nbformat.read(path, as_version=4)
        client = NotebookClient(
            nb,
            kernel_name="rust",
            timeout=CELL_TIMEOUT_S,
            resources={"metadata": {"path": str(path.parent.resolve())}},
        )
        started = time.monotonic()
        try:
            client.execute()
        except CellExecutionError as err:
            failures += 1
            print(f"notebooks: FAIL {path}: {err}", file=sys.stderr)
            # evcxr reports compile errors as stderr text and error outputs
            # of the cell, not in the exception: show them.
            for cell in nb.cells:
                for out in cell.get("outputs", []):
                    if out.get("output_type") == "error":
                        print("\n".join(out.get("traceback", [])) or out.get("evalue", ""), file=sys.stderr)
                    elif out.get("name") == "stderr":
                        print(out.get("text", ""), file=sys.stderr)
            continue
        except Exception as err:  # kernel died, timeout, missing kernel spec
            failures += 1
            print(f"notebooks: FAIL {path}: {type(err).__name__}: {err}", file=sys.stderr)
            continue
        out_dir = os.environ.get("CODEX_NOTEBOOK_OUT")
        if out_dir:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, Path(out_dir) / path.name)
        cells = sum(1 for c in nb.cells if c.cell_type == "code")
        elapsed = time.monotonic() - started
        print(f"notebooks: ok   {path} ({cells} code cells, {elapsed:.1f} s)")
    print(f"notebooks: {len(paths) - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
