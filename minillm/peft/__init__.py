"""Parameter-efficient fine-tuning: a frozen model, a few trained parameters, saved as Hugging Face PEFT saves them."""
