"""The app's screens: main (tabs, panes, filter), the narrow run-detail overlay, and help."""

# Below this many columns only the run list shows; Enter opens the run's detail full screen.
NARROW_BELOW = 100
# Time in phase moves on even when nothing is written: each screen that shows it re-renders this often.
TICK_SECONDS = 15.0
