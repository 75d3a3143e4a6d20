"""Public Keras layers. Each is registered as `keras_transformer>ClassName`."""

# --- attention ---
# --- positions ---
# --- embeddings, feed-forward, norms ---
# --- blocks ---
