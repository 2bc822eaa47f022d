"""Reading events and what they point at: the event view, patterns, console links, log tails, Batch listings."""
