"""The platform's own evaluation (issue 15): KPIs over the catalog's history, and the report.

`compute` and `figures` are pure (plain data in, figures out, unit-tested by hand-computed
examples); `source` reads the catalog, audit log and jobs; `report` puts a report together;
`render` and `charts` write it as HTML (with SVG charts), CSV or JSON; `cli` is
`vigil-controller report`. docs/kpi.md says what each figure means.
"""
