"""Kafka producers: similar-item lists, dead letters, and ``simstream publish``."""
