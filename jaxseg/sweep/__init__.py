"""Whole grids in one launch: expanding experiment files, planning cohorts, running, tabulating."""
