"""The trainer, the optimizer and the Task protocol that connects a task to the trainer."""
