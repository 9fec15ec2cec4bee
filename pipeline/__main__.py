"""`python -m pipeline` is `callqa`: for a machine where the package is importable but not installed (a GPU box
given the checkout on PYTHONPATH, bench/gpu_box.py)."""

from pipeline.cli import app

if __name__ == "__main__":
    app(prog_name="callqa")
