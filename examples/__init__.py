"""Runnable uses of the workbench."""
