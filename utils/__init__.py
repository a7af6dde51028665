"""Shared code of the xtreme-inter scripts: tasks, data, preprocessing, metrics, models and results."""
