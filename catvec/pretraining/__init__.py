"""The pretrain wing: events -> corpus -> skip-gram vectors, next-item evaluation, tuning, and its pipeline."""
