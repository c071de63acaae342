"""The EIE-style sparse engine: engine spec, cycle model and component; the thresholded layer on
it."""
