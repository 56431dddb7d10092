"""The Compare panel: its widget, the layers it reads, the job it runs, its table and FRC plot."""
