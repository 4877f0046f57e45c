"""Seed and held-out evaluation data of the Honeycomb example, and the schemas they use."""
