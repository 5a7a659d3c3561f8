"""The reader: a cross-encoder trained here that picks the sentence to cite, gives the short answer
and says whether the passage answers at all.

- inputs.py     how a (question, passage) pair becomes model windows (training and inference alike)
- inference.py  the ONNX graph at question time, spans decoded to exact characters
- model.py      composing the shipped weights (weights/, with their model card) with the provisioned e5
"""
