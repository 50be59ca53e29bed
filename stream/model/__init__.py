"""The model: the ONNX engine, the model card (the contract with export/), and the
rules from probabilities to classes present."""
