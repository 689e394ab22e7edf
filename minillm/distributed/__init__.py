"""Training on several processes over MPI: data parallelism (each rank its share of every batch)."""
