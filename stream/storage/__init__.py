"""Crash-safe files on local disk (atomic writes and directories)."""
