"""Participant views."""
