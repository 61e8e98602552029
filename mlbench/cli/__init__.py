"""The ``mlbench`` command line, one module per command.

Each command module (``listing``, ``run``, ``data``, ``check``, ``bench``, ``report``, ``compare``, ``ui``)
holds its argparse sub-parser beside its handler; :mod:`mlbench.cli.options` declares the options several
commands share (store, data folder, plugins, file-task options) once, and :mod:`mlbench.cli.main` assembles
the parser, owns the error format (one ``mlbench: error:`` line; usage errors exit 2, data errors 1) and is
the console entry point. This is the top stage: it may import every other part of mlbench, and nothing
imports it. Heavy libraries (torch, MLflow, Optuna) are imported inside the handlers that need them, so
``mlbench --help`` and ``mlbench list`` stay fast.
"""
