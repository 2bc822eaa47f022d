"""Delivering messages to Slack: one thin, bounded layer over slack-sdk."""
