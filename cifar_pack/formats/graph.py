"""One graph every ONNX runtime loads: static shapes, constants folded, nothing unused.

tf2onnx writes Keras' ``Flatten`` as a shape computed at run time, Shape -> Gather -> Cast ->
Slice -> Concat -> Cast -> Reshape, for what is the constant ``[-1, 4096]``. onnxruntime
evaluates it (and its offline optimiser does not fold it, the batch axis being dynamic); tract
refuses the file ("shape input is variable"). ``simplify`` replaces every such shape with the
constant that shape inference proves, folds what then depends on constants only, and removes the
nodes, initializers and opset domains nothing uses. It changes no value the graph computes; the
export's parity gate runs on the simplified file.

Needs the ``onnx`` package only (the ``[train]`` extra), never TensorFlow.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..runtime.config import INPUT_NAME, INPUT_SHAPE
from ..runtime.errors import ModelError
from ..runtime.onnx_file import model_proto_metadata, read_metadata, write_model
from .parity import ParityReport, check_parity

if TYPE_CHECKING:
    from onnx import ModelProto, NodeProto


def simplify(model: ModelProto) -> ModelProto:
    """A copy of ``model`` with static Reshape targets, constants folded, dead nodes removed, every node named."""
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(model)
    _static_reshapes(out)
    _fold_constants(out)
    _remove_unused(out)
    for i, node in enumerate(out.graph.node):  # quantization excludes nodes by name: every node gets one
        node.name = node.name or f"{node.op_type}_{i}"
    del out.graph.value_info[:]  # stale after the rewrite: inferred again below
    return onnx.shape_inference.infer_shapes(out, strict_mode=True)


def node_counts(model: ModelProto) -> dict[str, int]:
    """``{op_type: count}`` of the graph."""
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


def graph_report(before: ModelProto, after: ModelProto) -> dict:
    """What ``simplify`` changed, for the file's metadata: node counts, and the op types removed."""
    old, new = node_counts(before), node_counts(after)
    removed = {op: n - new.get(op, 0) for op, n in old.items() if n > new.get(op, 0)}
    return {"nodes_converted": sum(old.values()), "nodes_written": sum(new.values()), "removed": removed}


def resimplify_onnx(source: str | Path, output: str | Path) -> tuple[Path, ParityReport]:
    """Rewrite an older cifar-pack float32 export with today's graph (``graph.simplify``).

    Parity runs against the source file on onnxruntime (random inputs suffice: the rewrite
    changes no arithmetic, so the difference must be exactly 0 up to float rounding); the
    metadata is kept, with ``graph`` added.

    Raises:
        ModelError: not a loadable ONNX file. ParityError: the rewrite changed a value.
    """
    import onnx
    import onnxruntime as ort

    source, output = Path(source), Path(output)
    try:
        original = onnx.load(str(source))
        reference = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnx/onnxruntime raise assorted types
        raise ModelError(f"{source}: not a loadable ONNX model ({str(exc).splitlines()[0][:160]})") from None
    metadata = read_metadata(model_proto_metadata(original), source)
    simplified = simplify(original)
    images = np.random.default_rng(0).integers(0, 256, (256, *INPUT_SHAPE), dtype=np.uint8)
    run = lambda x: reference.run(None, {INPUT_NAME: x})[0]  # noqa: E731
    report = check_parity(run, simplified.SerializeToString(), images, 1e-6, f"random inputs vs {source.name}")
    write_model(output, simplified, metadata | {"graph": graph_report(original, simplified)})
    return output, report


def _static_reshapes(model: ModelProto) -> None:
    """Each Reshape whose target is computed gets the constant target shape inference proves.

    Inference with data propagation knows the output of the flatten is [N, 4096] (N the dynamic
    batch); the new target is [-1, 4096]. A Reshape with more than one unknown axis is left alone.
    """
    import onnx
    from onnx import numpy_helper

    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    shapes = {v.name: v.type.tensor_type.shape for v in (*inferred.graph.value_info, *inferred.graph.output)}
    constants = {t.name for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type != "Reshape" or node.input[1] in constants or node.output[0] not in shapes:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in shapes[node.output[0]].dim]
        if not dims or dims.count(-1) > 1:
            continue
        name = f"{node.name}/static_shape"
        model.graph.initializer.append(numpy_helper.from_array(np.array(dims, np.int64), name))
        node.input[1] = name
        constants.add(name)


# Q/DQ pairs on constant weights are how an int8 file stores them: folded, they would be float32.
_KEEP = {"QuantizeLinear", "DequantizeLinear"}


def _fold_constants(model: ModelProto) -> None:
    """Nodes whose inputs are all initializers become initializers (onnx's reference evaluator)."""
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    kept: list[NodeProto] = []
    for node in model.graph.node:
        if node.op_type not in _KEEP and (
            node.op_type == "Constant" or (node.input and all(i in values for i in node.input if i))
        ):
            graph = helper.make_graph(
                [node], "fold", [], [helper.make_tensor_value_info(o, 0, None) for o in node.output]
            )
            folded = ReferenceEvaluator(helper.make_model(graph, opset_imports=model.opset_import)).run(
                None, {i: values[i] for i in node.input if i}
            )
            for name, value in zip(node.output, folded):
                values[name] = np.asarray(value)
                model.graph.initializer.append(numpy_helper.from_array(values[name], name))
        else:
            kept.append(node)
    del model.graph.node[:]
    model.graph.node.extend(kept)


def _remove_unused(model: ModelProto) -> None:
    """Drop nodes no graph output depends on, initializers no node reads, opset domains no node uses."""
    needed = {o.name for o in model.graph.output}
    kept: list[NodeProto] = []
    for node in reversed(model.graph.node):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
    del model.graph.node[:]
    model.graph.node.extend(reversed(kept))
    initializers = [t for t in model.graph.initializer if t.name in needed]
    del model.graph.initializer[:]
    model.graph.initializer.extend(initializers)
    domains = {n.domain or "" for n in model.graph.node} | {""}
    opsets = [o for o in model.opset_import if (o.domain or "") in domains]
    del model.opset_import[:]
    model.opset_import.extend(opsets)
