"""Where datasets live and how they are read: corpora for pretraining, labelled sets for fine-tuning."""
