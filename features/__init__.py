"""Pure feature and label code: pandas and numpy only, no I/O, no clock."""
