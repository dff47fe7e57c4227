"""The incremental trainer: Kafka samples -> passes -> training -> export + checkpoint."""
