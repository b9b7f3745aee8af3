"""Operator commands on the catalog database itself (`vigil-controller db ...`).

Its own package because the commands read the configuration (`controller.cli_args`), which
itself opens the catalog: inside `controller.catalog` they would make an import cycle.
"""
