"""The Fine-tune panel: its widget, form, status, plots and HR-field overlay."""
