"""Drive networks of real timnode processes (and, later, simulated ones) as a user would."""
