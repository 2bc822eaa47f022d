"""Slack interactions: clicks on the messages' buttons, verified and acted on."""
