"""Composing Slack messages: pure functions from the event view to Block Kit."""
