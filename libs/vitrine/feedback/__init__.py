"""Feedback: interactions, attribution of outcomes to impressions, experiment statistics, and the
training signal mined from the interaction log."""
