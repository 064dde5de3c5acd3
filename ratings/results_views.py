"""Researcher views: the results page and its downloads (staff only)."""
