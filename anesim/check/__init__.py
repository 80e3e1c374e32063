"""``anesim check``: where each layer of a model runs on a chip, which rule decided, and what it costs."""
