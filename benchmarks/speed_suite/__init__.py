"""The speed suite behind benchmarks/speed.py (its command line and docstring), one module per measurement.

* ``harness``: data/config/model loading, ``Runs`` and the timers, medians, micro-F1, and
  ``run_phase``/``worker``: each phase in its own process, ``python benchmarks/speed.py --worker``;
* ``training``: training throughput of the package encoder against the padded and packed peers;
* ``time_to_best``: time to the best validation score (recorded quality run, or one run per precision);
* ``prediction``: ``LabelGenerator.predict`` throughput, micro-F1 and agreement;
* ``switches``: the decoding switches (beam 5, batch 256, decoding only);
* ``memory``: the baseline process and the package encoder's training peak RSS per precision;
* ``allocator``: glibc malloc's defaults against the package's raised thresholds;
* ``peers``: fastText and BR (LinearSVC) in the same run;
* ``suite``: the order of the phases of one data set, and ``PHASES``, what a phase process runs;
* ``tables``, ``report``, ``targets``: the markdown report (benchmarks/results/speed.md);
* ``profiling``: ``--profile`` (benchmarks/results/profile.md).

Benchmarks are scripts, not an installed package: this folder is imported as ``speed_suite`` with
benchmarks/ on ``sys.path`` (benchmarks/speed.py puts it there), and its modules import
benchmarks/common.py as ``common``.
"""
