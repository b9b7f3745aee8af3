"""The city simulator (`vigil-controller simulate`, bench/scheduler.py): synthetic networks
(presets), the traffic they offer (workload), the discrete-event run driven by the real planner
(simulate), the no-scheduler baseline (naive), what a run measured (metrics) and the report.
The running controller uses only the site vocabulary of `presets` (topology_file.py)."""
