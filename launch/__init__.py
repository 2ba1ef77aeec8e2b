"""The `arena` command line: run configs, process supervision, plots."""
