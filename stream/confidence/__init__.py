"""How sure the totals are: the screen-time interval and the audit."""
