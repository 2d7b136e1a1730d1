"""The native Phi-3(.5)-vision: configuration, model, image processor and processor."""

from phi3v_train.modeling.configuration_phi3_v import Phi3VConfig
from phi3v_train.modeling.image_processing_phi3_v import Phi3VImageProcessor
from phi3v_train.modeling.modeling_phi3_v import Phi3VForCausalLM, Phi3VModel
from phi3v_train.modeling.processing_phi3_v import Phi3VProcessor

__all__ = ["Phi3VConfig", "Phi3VForCausalLM", "Phi3VImageProcessor", "Phi3VModel", "Phi3VProcessor"]
