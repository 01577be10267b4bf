"""What runs real models for the app: sample images, weights, feature maps and the training demo."""
