"""Kafka consumers: the streaming worker (``simstream run``). One of two places importing confluent_kafka."""
