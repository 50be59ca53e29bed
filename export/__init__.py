"""Export side: Keras model -> self-describing ONNX file (tf2onnx), optional static INT8."""
