"""Admin for studies, stimuli, participants and ratings (staff only)."""
