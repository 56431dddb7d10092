"""Building blocks shared by the panels: the run/cancel panel, layer helpers, plots, model choices."""
