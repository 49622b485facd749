"""Index sets, class names, constructor params and structure keys."""

from __future__ import annotations

from torch import nn

from llm_perf_opt.tracer.grouping import Structure, constructor_params, index_label, qualified_class_name


def test_index_label() -> None:
    assert index_label([3, 1, 2]) == "{1..3}"
    assert index_label([0, 1, 3, 4, 6, 7, 9, 10]) == "{0,1,3,4,6,7,9,10}"
    assert index_label([2, 5, 8, 11]) == "{2,5,8,11}"
    assert index_label([7]) == "7"


def test_qualified_class_name_drops_dynamic_module_prefix() -> None:
    cls = type("DeepseekOCRForCausalLM", (nn.Module,), {})
    cls.__module__ = "transformers_modules.deepseek-ai.DeepSeek-OCR.2c968b4.modeling_deepseekocr"
    assert qualified_class_name(cls()) == "modeling_deepseekocr.DeepseekOCRForCausalLM"
    assert qualified_class_name(nn.Linear(2, 3)) == "torch.nn.modules.linear.Linear"


class Layer(nn.Module):
    def __init__(self, layer_idx: int, window_size: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.window_size = window_size
        self.kernel = (3, 3)
        self.lin = nn.Linear(4, 4)


def test_constructor_params_skip_index_attributes() -> None:
    params = constructor_params(Layer(5, 14))
    assert params == {"kernel": [3, 3], "window_size": 14}
    lin = constructor_params(nn.Linear(4, 6, bias=False))
    assert (lin["in_features"], lin["out_features"]) == (4, 6)
    assert constructor_params(nn.ModuleList([nn.ReLU()] * 3))["length"] == 3


def test_structure_keys() -> None:
    layers = nn.ModuleList([Layer(0, 14), Layer(1, 14), Layer(2, 0), Layer(3, 14)])
    layers[3].lin = nn.Linear(4, 5)
    structure = Structure(layers)
    keys = [structure.key(layer) for layer in layers]
    assert keys[0] == keys[1]  # only the index differs
    assert keys[0] != keys[2]  # window size differs
    assert keys[0] != keys[3]  # a child's parameter shapes differ
