"""Migration scripts, one per revision, applied in order by `3t db upgrade`."""
