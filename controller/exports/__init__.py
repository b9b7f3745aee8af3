"""Evidence exports: the signed manifest and its verification (`manifest`, pure), the tar
file written and read back (`bundle`), and `service.ExportService` (grant-checked,
use-counted, audited downloads)."""
