"""phi3v-data: the conversations/images JSONL format for Phi-3.5-vision, as code."""
