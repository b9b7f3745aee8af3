"""The camera resource directory (资源目录): each camera's name, place (township, village,
lat/lon) and 20-digit GB/T 28181 device code, with CSV import/export and paged, scoped
queries for the console's tree and camera list.

Pure decisions (`gbcode`, `rows`, `scope`, `tree`) are separate from the database adapter
(`store`), so the validation and the visibility rule are unit-tested without I/O.
"""
