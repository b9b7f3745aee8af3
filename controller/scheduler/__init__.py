"""Upload scheduling: which segments cross which links when, for the whole city.

Pure core (no I/O): `model` (plain data, errors), `topology` (validated, compiled link tree),
`topology_file` (TOML/JSON documents), `waterfill` (weighted max-min filling), `plan`
(strict-priority passes, segment order), `hysteresis` (when a new plan is worth new leases),
`planner` (current state, rejecting bad input whole), `inventory` (agent reports to demand).
The city-scale simulation: `presets`, `workload`, `simulate`, `metrics`, `naive` (baseline),
`report`; `cli` (the only I/O) registers `vigil-controller simulate`.

In a running controller: `leases` (the lease book, delivery meter; pure), `wire` (Lease and
Inventory messages), `options`, `desk` (`LeaseDesk`: the state one term of inputs changes,
new devices placed in batches, one replan for many inputs; pure), `service`
(`SchedulerService`: the lock and lease streams around the desk, holds for footage
requests), `loops` (its plan and database threads; coalesced replans), `upkeep` (its
database work), `mailbox`, `grpc_service`
(the AgentControl servicer) and `wiring` (how `serve` adds them to a controller).
"""
