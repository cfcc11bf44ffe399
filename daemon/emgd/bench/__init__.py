"""``emgd bench``: measurements of the controller's speed, losses and footprint."""
