"""The local stack: a real Apache Kafka broker (Maven jars) and Redis 8 + RediSearch (PyPI wheels)."""
