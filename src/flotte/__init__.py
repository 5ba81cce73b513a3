"""flotte: container infrastructure wherever a team can get machines."""

__version__ = "0.1.0"
