"""TERAN's encoders, ported from the reference implementation (models/teran.py, text.py, visual.py)."""
