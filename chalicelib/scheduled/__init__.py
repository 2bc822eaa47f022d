"""Scheduled work: the stuck-job sweep and the daily digest."""
