"""Slurm jobs: read with the Slurm client commands or slurmrestd, cancelled and suspended.

Each Slurm cluster sits behind one narrow interface (``JobSource`` in base.py); the parsers of
Slurm's JSON (parse.py) are pure and never raise. Calls block: the operator runs them in threads.
"""
