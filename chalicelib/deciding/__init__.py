"""Deciding what to do with an event: routing, duplicates, the diagnosis of a failure."""
