"""Simulated users and traffic: ground truth to check the feedback loop and its statistics against."""
