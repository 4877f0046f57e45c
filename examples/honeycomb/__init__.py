"""The Honeycomb case study: natural-language question + column list -> Honeycomb query JSON."""
