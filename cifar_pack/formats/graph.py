"""One graph every ONNX runtime loads: static shapes, constants folded, nothing unused.

tf2onnx writes Keras' ``Flatten`` as a shape computed at run time, Shape -> Gather -> Cast ->
Slice -> Concat -> Cast -> Reshape, for what is the constant ``[-1, 4096]``. onnxruntime
evaluates it (and its offline optimiser does not fold it, the batch axis being dynamic); tract
refuses the file ("shape input is variable"). ``simplify`` replaces every such shape with the
constant that shape inference proves, folds what then depends on constants only, and removes the
nodes, initializers and opset domains nothing uses. It changes no value the graph computes; the
export's parity gate runs on the simplified file.

Two rewrites put the ``fast`` CNN in the form onnxruntime's optimiser fuses (measured in
benchmarks/README.md, "Inference of the fast CNN"): tf2onnx writes GELU as
``0.5 * x * (1 + erf(x * 0.7071))``, which onnxruntime leaves as five element-wise passes, and its
fusion into one ``Gelu`` kernel only matches ``x * (1 + erf(x / sqrt 2)) * 0.5``; and BatchNorm
after a MaxPool is a per-channel Mul and Add that no Conv can absorb, while ``max(s*x) = s*max(x)``
for s > 0, so the Mul folds into the Conv before the pool (its weights and bias).

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
    _fusable_gelu(out)
    _scale_into_conv(out)
    _relu_before_pool(out)
    _share_equal_initializers(out)
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


def _share_equal_initializers(model: ModelProto) -> None:
    """Initializers with the same type, shape and bytes become one: a network that runs twice in
    the graph (export --flip-average) shares its weights, and the rewrites above give each Conv its
    own scaled copy, equal to its twin's (without this the file doubles)."""
    from onnx import numpy_helper

    first: dict[tuple, str] = {}
    renamed: dict[str, str] = {}
    for tensor in model.graph.initializer:
        key = (tensor.data_type, tuple(tensor.dims), numpy_helper.to_array(tensor).tobytes())
        renamed[tensor.name] = first.setdefault(key, tensor.name)
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = renamed.get(name, name)


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


def _consumers(model: ModelProto) -> dict[str, list[NodeProto]]:
    users: dict[str, list[NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    return users


def _scalar(values: dict[str, np.ndarray], name: str) -> float | None:
    """The value of a one-element constant input, else None."""
    value = values.get(name)
    return float(value.reshape(-1)[0]) if value is not None and value.size == 1 else None


def _fusable_gelu(model: ModelProto) -> None:
    """``0.5*x * (1 + erf(x * 0.7071))`` (any operand order) -> ``x * (1 + erf(x / sqrt 2)) * 0.5``,
    the pattern onnxruntime's GeluFusion matches (its Gelu kernel: one pass instead of five)."""
    from onnx import helper, numpy_helper

    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    matches = {id(m[-1]): m for m in (_gelu_match(model, values, erf) for erf in model.graph.node) if m}
    if not matches:
        return
    for name, value in (("gelu/sqrt2", 2.0**0.5), ("gelu/one", 1.0), ("gelu/half", 0.5)):
        model.graph.initializer.append(numpy_helper.from_array(np.array(value, np.float32), name))
    dropped = {id(node) for match in matches.values() for node in match[1:]}
    nodes: list[NodeProto] = []
    for node in model.graph.node:
        if id(node) in matches:  # the last of the five: every input of the new ones exists by now
            x, *_, final = matches[id(node)]
            n = f"{final.name or final.output[0]}/gelu"
            nodes += [
                helper.make_node("Div", [x, "gelu/sqrt2"], [f"{n}/div"], name=f"{n}/div"),
                helper.make_node("Erf", [f"{n}/div"], [f"{n}/erf"], name=f"{n}/erf"),
                helper.make_node("Add", [f"{n}/erf", "gelu/one"], [f"{n}/add"], name=f"{n}/add"),
                helper.make_node("Mul", [x, f"{n}/add"], [f"{n}/mul"], name=f"{n}/mul"),
                helper.make_node("Mul", [f"{n}/mul", "gelu/half"], [final.output[0]], name=f"{n}/half"),
            ]
        elif id(node) not in dropped:
            nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def _gelu_match(model: ModelProto, values: dict[str, np.ndarray], erf: NodeProto) -> tuple | None:
    """(x, scale, erf, add, half, final) when ``erf`` is the middle of tf2onnx's GELU, else None.
    Each intermediate must have one consumer (nothing else may read a value that disappears)."""
    if erf.op_type != "Erf":
        return None
    producer = {o: n for n in model.graph.node for o in n.output}
    users = _consumers(model)
    other = lambda node, name: node.input[1] if node.input[0] == name else node.input[0]  # noqa: E731
    only = lambda name: users.get(name, [None])[0] if len(users.get(name, [])) == 1 else None  # noqa: E731
    scale, add = producer.get(erf.input[0]), only(erf.output[0])
    if scale is None or scale.op_type != "Mul" or add is None or add.op_type != "Add" or only(scale.output[0]) is None:
        return None
    x = next((i for i in scale.input if i not in values), "")
    if not np.isclose(_scalar(values, other(scale, x)) or 0.0, 0.5**0.5, rtol=1e-6):
        return None
    final = only(add.output[0])
    if _scalar(values, other(add, erf.output[0])) != 1.0 or final is None or final.op_type != "Mul":
        return None
    half = producer.get(other(final, add.output[0]))
    if half is None or half.op_type != "Mul" or x not in half.input or only(half.output[0]) is not final:
        return None
    if _scalar(values, other(half, x)) != 0.5:
        return None
    return x, scale, erf, add, half, final


def _scale_into_conv(model: ModelProto) -> None:
    """Conv -> MaxPool -> Mul(s), s a constant per output channel, all > 0, becomes one Conv
    (weights and bias times s) -> MaxPool, the pool writing the Mul's output name (its readers are
    unchanged): BatchNorm's scale after the pool costs no pass of its own.

    The Add of BatchNorm's shift stays after the pool: with the pool feeding GELU directly,
    OpenVINO 2026.4's CPU plugin computed Conv -> MaxPool -> (x, f(x)) -> Mul wrongly (max abs
    diff 0.12 against onnxruntime; tests/test_engines.py runs every engine on the shipped file).
    """
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    users = _consumers(model)
    producer = {o: n for n in model.graph.node for o in n.output}
    removed = set()
    for pool in [n for n in model.graph.node if n.op_type == "MaxPool" and len(n.output) == 1]:
        conv, mul = producer.get(pool.input[0]), users.get(pool.output[0], [])
        if conv is None or conv.op_type != "Conv" or len(users[conv.output[0]]) != 1 or len(mul) != 1:
            continue
        mul = mul[0]
        scale = mul.input[1] if mul.input[0] == pool.output[0] else mul.input[0]
        weights = conv.input[1]
        if mul.op_type != "Mul" or scale not in inits or weights not in inits:
            continue  # weights another Conv also reads stay as they are: this Conv gets its own
        weight = numpy_helper.to_array(inits[weights]).astype(np.float64)
        channels = len(weight)
        channel = _per_channel(numpy_helper.to_array(inits[scale]), channels)
        if channel is None or not np.all(channel > 0) or (len(conv.input) > 2 and conv.input[2] not in inits):
            continue
        bias = (
            numpy_helper.to_array(inits[conv.input[2]]).astype(np.float64)
            if len(conv.input) > 2
            else np.zeros(channels)
        )
        name = f"{conv.output[0]}/scaled"
        model.graph.initializer.append(
            numpy_helper.from_array((weight * channel[:, None, None, None]).astype(np.float32), f"{name}_w")
        )
        model.graph.initializer.append(numpy_helper.from_array((bias * channel).astype(np.float32), f"{name}_b"))
        del conv.input[1:]
        conv.input.extend([f"{name}_w", f"{name}_b"])
        pool.output[0] = mul.output[0]
        removed.add(id(mul))
    nodes = [n for n in model.graph.node if id(n) not in removed]
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def _relu_before_pool(model: ModelProto) -> None:
    """Conv -> MaxPool -> Add(c) -> Relu, c a constant per channel, becomes Conv (bias + c) -> Relu
    -> MaxPool, the pool writing the Relu's output name: ``max(x) + c = max(x + c)`` and
    ``relu(max(x)) = max(relu(x))`` (both are monotone), so every value is the same, and
    onnxruntime fuses the Conv and the Relu into one kernel: BatchNorm's shift and the activation
    cost no pass of their own (the ReLU ``fast`` CNN; GELU keeps ``_scale_into_conv``'s form).
    """
    from onnx import helper, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    graph = list(model.graph.node)  # holds every node's wrapper, so that id() names one node throughout
    users = _consumers(model)  # read before any rewrite: the blocks matched share no node
    before: dict[int, NodeProto] = {}  # id(pool) -> the Relu now emitted just before it
    dropped: set[int] = set()
    for pool in [n for n in graph if n.op_type == "MaxPool" and len(n.output) == 1]:
        match = _conv_pool_shift_relu(graph, users, pool, inits)
        if match is None:
            continue
        conv, add, relu, shift = match
        bias = numpy_helper.to_array(inits[conv.input[2]]).astype(np.float64) + shift
        conv.input[2] = f"{conv.output[0]}/shifted_b"
        model.graph.initializer.append(numpy_helper.from_array(bias.astype(np.float32), conv.input[2]))
        activated = f"{conv.output[0]}/relu"
        before[id(pool)] = helper.make_node("Relu", [conv.output[0]], [activated], name=f"{activated}/before_pool")
        pool.input[0], pool.output[0] = activated, relu.output[0]
        dropped.update((id(add), id(relu)))
    nodes: list[NodeProto] = []
    for node in graph:
        nodes += [before[id(node)]] if id(node) in before else []
        nodes += [] if id(node) in dropped else [node]
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def _conv_pool_shift_relu(
    graph: list[NodeProto], users: dict[str, list[NodeProto]], pool: NodeProto, inits: dict
) -> tuple | None:
    """(conv, add, relu, shift (C,)) when ``pool`` reads a Conv with a constant bias and feeds an Add
    of a per-channel constant whose only reader is a Relu, each value read once; else None."""
    from onnx import numpy_helper

    only = lambda name: users[name][0] if len(users.get(name, [])) == 1 else None  # noqa: E731
    conv = next((n for n in graph if pool.input[0] in n.output), None)
    add = only(pool.output[0])
    if conv is None or conv.op_type != "Conv" or only(conv.output[0]) is not pool or add is None:
        return None
    relu = only(add.output[0]) if add.op_type == "Add" else None
    if relu is None or relu.op_type != "Relu" or len(conv.input) < 3 or conv.input[2] not in inits:
        return None
    constant = add.input[1] if add.input[0] == pool.output[0] else add.input[0]
    if constant not in inits:
        return None
    channels = numpy_helper.to_array(inits[conv.input[1]]).shape[0]
    shift = _per_channel(numpy_helper.to_array(inits[constant]), channels)
    return None if shift is None else (conv, add, relu, shift)


def _per_channel(value: np.ndarray, channels: int) -> np.ndarray | None:
    """A constant that broadcasts per channel over NCHW (a scalar, (1, C, 1, 1) or (C, 1, 1)) as
    (C,) float64; None for any other shape."""
    if value.size == 1 or value.shape in ((1, channels, 1, 1), (channels, 1, 1)):
        return np.broadcast_to(value.astype(np.float64).reshape(-1), (channels,))
    return None
