"""One LightningModule per task family."""
