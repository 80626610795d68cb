"""Model risk governance: validation reports, fair-lending tests and the approval
gate of every registered version (issue 27)."""
