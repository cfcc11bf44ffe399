"""Training the network (torch, the ``train`` extra) and publishing it as an ONNX model.

Owns the recipe (:mod:`~emgd.training.train`) and :mod:`~emgd.training.publish` (export with
its model card and closed-loop scores). It may import the offline side (to score what it
trains), the stages and the base modules; nothing at run time on the Pi imports it.
"""
