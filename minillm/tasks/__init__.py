"""What a model is trained to do: each task owns its batches, loss, metrics and reports."""
