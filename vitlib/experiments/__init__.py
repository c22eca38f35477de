"""Experiments that produce the measured numbers in the book."""
