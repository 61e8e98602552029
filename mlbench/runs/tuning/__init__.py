"""Hyperparameter search with Optuna, tracked as nested MLflow runs.

One Optuna study per (method, task, seed, preset, fixed parameters, task
fingerprint), kept in a persistent storage, maximises validation micro-F1 over
the method's ``search_space``; the best configuration is then evaluated on test
(optionally refitted on train+valid). The layout in MLflow:

* experiment = task; one **parent** run per study (tag ``mlbench.role=parent``,
  ``mlbench.study``) holding the best configuration (tags ``mlbench.best.<param>``,
  ``mlbench.best_trial``), ``best_valid_micro_f1`` and the test metrics;
* one nested **trial** run per Optuna trial (``mlflow.parentRunId``,
  ``mlbench.trial`` = the trial number) with the trial's parameters, its
  per-epoch validation curve, ``mlbench.state`` (COMPLETE, PRUNED, FAIL) and, for a
  failed trial, ``mlbench.error``. Run status: FINISHED, KILLED (pruned, or
  interrupted) or FAILED.

Counting trials. ``--trials N`` asks for N trials *with an outcome*: complete,
pruned, or failed because the method raised. A trial whose process was killed
(SIGKILL, Ctrl-C, a lost machine) has no outcome: it is marked FAIL without
``mlbench.error`` (MLflow: KILLED, tag ``mlbench.interrupted``), does not count,
and its configuration is queued again once (Optuna's ``failed_trial`` /
``retry_history`` system attributes, as ``RetryHeartbeatStaleTrialCallback``
writes them), so rerunning the command loses no trial and repeats none that
finished. Such trials are found by Optuna's heartbeat on RDB storages (a trial
not heard of for ``GRACE_PERIOD_S``) and at once, on the machine that ran them,
because the process recorded in the trial is gone.

Workers. Any number of processes, on one machine (``--n-jobs``) or many (the
same command against a shared storage), run the same loop: claim a slot while
fewer than N trials are finished or running, run it, repeat. The claim is made
under a lock (a file lock for SQLite and journal files, an advisory lock on
PostgreSQL) so the study never gets more than N trials; the process that sees
the study complete evaluates the best configuration on test.

Modules, in import order (each imports only those above it):

* ``config``: tunable timings, attribute names, ``TuneSpec``, ``StudyPending``;
* ``recovery``: owner records, trial counts, lost-trial detection and retries, MLflow reconciliation;
* ``study``: study naming, storage opening, the seeded sampler, the pruner;
* ``claims``: the claim lock and the trial heartbeat;
* ``tuner``: ``Tuner``, the study loop and its MLflow runs;
* ``plots``: Optuna's study plots as PNG files;
* ``evaluation``: the test evaluation of the best trial, given the tuner that ran the study;
* ``workers``: ``--n-jobs`` worker processes and their GPUs;
* ``driver``: ``tune``, one seed's study from start to finish.

The timings in ``config`` are read from that module at the moment they are used, so setting
``mlbench.runs.tuning.config.GRACE_PERIOD_S`` changes them for the whole process (the tests shorten them).
"""
