"""The feedback service: attributes outcomes to impressions and keeps the experiments' results."""
