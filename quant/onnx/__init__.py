"""ONNX, QONNX and QDQ: the op table, the importer, the writer and post-training quantization.
The only package that imports ``onnx``."""

from .importer import ImportResult, import_onnx

__all__ = ["import_onnx", "ImportResult"]
