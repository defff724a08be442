"""Ray job entry points: ``python -m jobs.<name> --config x.yaml``. Wiring only; logic is in teran_core."""
