"""ONNX-to-ONNX steps and export targets, TensorFlow-free (onnx and onnxruntime only).

config.py    parity and int8 defaults, Int8Settings
graph.py     the graph every runtime loads: static shapes, constants folded, unused nodes removed
parity.py    a float32 reference function vs onnxruntime on the same images, at two batch sizes
int8.py      static QDQ int8 with onnxruntime.quantization, gated on accuracy
pipeline.py  the steps after a float32 .onnx exists, shared by both export paths
"""
