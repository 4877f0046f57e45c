"""The table of examples and the stage contract that every stage shares."""
