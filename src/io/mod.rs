//! Files in and out: weights (safetensors, memory-mapped), images and masks (PNG/JPEG).
