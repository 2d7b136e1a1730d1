"""phi3v-train: fine-tune Phi-3.5-vision on datasets that ``phi3v-data validate`` accepts."""
