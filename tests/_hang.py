"""The one time limit of the test suite's subprocesses: a guard against a hang, not a speed goal.

Speed and memory goals live in ``benchmarks/``; a test that fails because a shared CI machine is
slow would be a timed test. 15 minutes is far above any subprocess's run on an idle 2-core machine
(the longest, the Keras conformance children, have their own larger limit).
"""

HANG_S = 900
