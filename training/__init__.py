"""Training side: frames from a video, labels, a frozen-VGG16 classifier. TensorFlow loads lazily."""
