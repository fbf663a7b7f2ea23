"""Training from points: config, data, sampler, losses, loop, checkpoints."""
