"""The model: the ONNX engine, the model card (the contract with export/) and the keys of its
training metrics, and the rules from probabilities to classes present."""
