"""Chat-data formats (sharegpt, OpenAI messages, alpaca) and the exporters that write them."""
