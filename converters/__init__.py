"""Converters from edge-mlp models to mobile artifacts.

One module per target (ExecuTorch, Core ML, TFLite/LiteRT, ONNX) behind one small shared interface,
registered by name. Filled in by the converters issue; this package only reserves the layout.
"""
