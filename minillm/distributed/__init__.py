"""Training on several processes over MPI: data parallelism and a sharded optimizer (ZeRO-1)."""
