"""Hand-written (question, query) pairs, one module per schema; see ``make_data.py``."""
