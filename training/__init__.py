"""The training application (`python -m training`)."""
