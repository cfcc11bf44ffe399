"""The network: its spec (pure Python), its PyTorch module (training only) and its report.

:mod:`emgd.model.spec` and :mod:`emgd.model.info` need no torch and are safe to import on the
Pi; :mod:`emgd.model.network` imports torch and is only for training and export, so this
package does not import it.
"""

from emgd.model.info import model_info_text
from emgd.model.spec import BranchPlan, BranchSpec, ConvLayer, ModelSpec, Stage2Spec

__all__ = ["BranchPlan", "BranchSpec", "ConvLayer", "ModelSpec", "Stage2Spec", "model_info_text"]
