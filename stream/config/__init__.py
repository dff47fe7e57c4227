"""The pipeline configuration: typed sections loaded from one YAML file, and the user-facing error type."""
