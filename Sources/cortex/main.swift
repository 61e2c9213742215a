print("cortex")
