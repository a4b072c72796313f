"""ONNX graph rewrites that let ONNX Runtime's CPU kernels run a QDQ model in integers.

Measured on ``sr-compact-x2`` (Sapphire Rapids, AVX512-VNNI, 1 thread, 640x360): a plain
``quantize_static`` QDQ model is only ~1.4x faster than fp32, because

- ``PRelu`` has no integer kernel: every layer goes DequantizeLinear -> PRelu (float, and
  ORT's PRelu with a per-channel slope is ~6x slower than a broadcast Mul) -> QuantizeLinear;
- ORT's fast symmetric u8s8 convolution (MLAS ``ConvSym``) needs input channels % 4 == 0 and
  output channels >= 16 (and % 8 == 0 on AVX2/AVX-VNNI); a 3->32 or 32->12 convolution falls
  back to a generic path 2-3x slower than the padded one.

Before calibration (:func:`prepare_for_cpu`), on the float graph (exact rewrites):

- ``PRelu(y, a)`` with a constant per-channel slope, ``|a| <= 1`` -> ``Max(y, a*y)``, the
  ``a*y`` as a 1x1 depthwise ``Conv`` (its weights are ``a``: exactly representable with
  per-channel weight scales). A single (scalar) slope becomes ``LeakyRelu``.
- ``Conv`` (group 1) with too few/unaligned channels gets zero filters (then a ``Slice``
  back to the real channels) or zero input channels (a ``Pad`` of the input).

After quantisation (:func:`integer_max`): each ``Max`` whose inputs and output share one
scale/zero point (the calibration ranges of ``a*y`` and of the ``Max`` are tied to ``y``'s,
which contains both, see ``int8.py``) runs directly on the uint8 tensors: ``Max`` of two
codes with the same affine map is exact. Between the float ends (:func:`float_ends`: first
and last convolutions, input skip, output) only QLinearConv and integer Max remain: 4.4x
fp32 with everything quantised, 3.5x with the float ends (1 thread, 640x360). TensorRT gets
the plain QDQ model instead (it fuses activations itself and needs symmetric scales).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

TAG = "_vsr"


def _ranks(model: onnx.ModelProto) -> dict[str, int]:
    inferred = shape_inference.infer_shapes(model)
    g = inferred.graph
    return {v.name: len(v.type.tensor_type.shape.dim)
            for v in [*g.value_info, *g.input, *g.output] if v.type.HasField("tensor_type")}


def _initializers(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    return {i.name: i for i in model.graph.initializer}


def prelu_to_max(model: onnx.ModelProto) -> list[str]:
    """Rewrite eligible PRelu nodes in place; returns the names of the Max nodes made."""
    inits, ranks = _initializers(model), _ranks(model)
    nodes, maxes = [], []
    for n in model.graph.node:
        if n.op_type != "PRelu" or n.input[1] not in inits or ranks.get(n.input[0]) != 4:
            nodes.append(n)
            continue
        a = numpy_helper.to_array(inits[n.input[1]]).astype(np.float32)
        c = int(a.size)
        if c == 1:
            nodes.append(helper.make_node("LeakyRelu", [n.input[0]], list(n.output),
                                          name=n.name + TAG + "_leaky", alpha=float(a.reshape(-1)[0])))
            continue
        if a.shape not in ((c, 1, 1), (1, c, 1, 1)) or not np.all(np.abs(a) <= 1.0):
            nodes.append(n)
            continue
        w = n.name + TAG + "_slope"
        model.graph.initializer.append(numpy_helper.from_array(a.reshape(c, 1, 1, 1), w))
        ay = n.output[0] + TAG + "_ay"
        nodes.append(helper.make_node("Conv", [n.input[0], w], [ay], name=n.name + TAG + "_dw",
                                      group=c, kernel_shape=[1, 1]))
        mx = helper.make_node("Max", [n.input[0], ay], list(n.output), name=n.name + TAG + "_max")
        nodes.append(mx)
        maxes.append(mx.name)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return maxes


def _aligned(cin: int, cout: int) -> tuple[int, int]:
    new_cin = -(-cin // 4) * 4
    new_cout = 16 if cout < 16 else -(-cout // 8) * 8
    return new_cin, new_cout


def pad_conv_channels(model: onnx.ModelProto, skip: set[str] | frozenset[str] = frozenset()) -> int:
    """Pad group-1 2-D convolutions (but those named in *skip*) to the channel counts of
    ORT's fast int8 kernel (exact)."""
    inits = _initializers(model)
    nodes, changed = [], 0
    for n in model.graph.node:
        w_init = (inits.get(n.input[1]) if n.op_type == "Conv" and len(n.input) > 1 and n.name not in skip
                  else None)
        group = next((a.i for a in n.attribute if a.name == "group"), 1)
        if w_init is None or group != 1 or len(w_init.dims) != 4:
            nodes.append(n)
            continue
        b_init = inits.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        if len(n.input) > 2 and n.input[2] and b_init is None:
            nodes.append(n)  # a computed bias: leave it alone
            continue
        w = numpy_helper.to_array(w_init)
        cout, cin = int(w.shape[0]), int(w.shape[1])
        new_cin, new_cout = _aligned(cin, cout)
        if (new_cin, new_cout) == (cin, cout):
            nodes.append(n)
            continue
        w2 = np.zeros((new_cout, new_cin, *w.shape[2:]), w.dtype)
        w2[:cout, :cin] = w
        base = n.name or n.output[0]
        inputs = list(n.input)
        inputs[1] = base + TAG + "_w"
        model.graph.initializer.append(numpy_helper.from_array(w2, inputs[1]))
        if b_init is not None:
            b = numpy_helper.to_array(b_init)
            b2 = np.zeros(new_cout, b.dtype)
            b2[:cout] = b
            inputs[2] = base + TAG + "_b"
            model.graph.initializer.append(numpy_helper.from_array(b2, inputs[2]))
        if new_cin != cin:
            pads = base + TAG + "_pads"
            model.graph.initializer.append(numpy_helper.from_array(
                np.array([0, 0, 0, 0, 0, new_cin - cin, 0, 0], np.int64), pads))
            padded = inputs[0] + TAG + "_cpad_" + base
            nodes.append(helper.make_node("Pad", [inputs[0], pads], [padded], name=base + TAG + "_pad"))
            inputs[0] = padded
        out = n.output[0]
        for i, name in enumerate(inputs):
            n.input[i] = name
        nodes.append(n)
        if new_cout != cout:
            n.output[0] = out + TAG + "_wide"
            names = [base + TAG + s for s in ("_starts", "_ends", "_axes")]
            for name, v in zip(names, (0, cout, 1), strict=True):
                model.graph.initializer.append(numpy_helper.from_array(np.array([v], np.int64), name))
            nodes.append(helper.make_node("Slice", [n.output[0], *names], [out], name=base + TAG + "_slice"))
        changed += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return changed


WEIGHTED = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def float_ends(model: onnx.ModelProto) -> list[str]:
    """Nodes to keep in float: the *head* (everything reachable from the graph input without
    passing a weighted op, and the first weighted ops reached) and the *tail* (the last
    weighted ops and everything after them). So the input is never rounded to 8 bits, nor
    the output, nor a residual skip of the input; the first and last convolutions are
    cheap (few input or output channels). On sr-compact-x2 this cuts RMS(int8 - fp32) by
    ~15 % (minmax calibration: 0.80 -> 0.69 Y codes on the skimage held-out photos, 0.55 ->
    0.46 on smooth wallpapers) for ~20 % of the int8 speed."""
    g = model.graph
    inits = {i.name for i in g.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    producer = {o: n for n in g.node for o in n.output}
    keep: dict[int, onnx.NodeProto] = {}
    todo = [i.name for i in g.input if i.name not in inits]
    seen: set[str] = set()
    while todo:  # head: forward from the input, stopping after the first weighted ops
        t = todo.pop()
        if t in seen:
            continue
        seen.add(t)
        for n in consumers.get(t, []):
            keep[id(n)] = n
            if n.op_type not in WEIGHTED:
                todo.extend(n.output)
    todo, seen = [o.name for o in g.output], set()
    while todo:  # tail: backward from the outputs, stopping after the last weighted ops
        t = todo.pop()
        n = producer.get(t)
        if n is None or t in seen:
            continue
        seen.add(t)
        keep[id(n)] = n
        if n.op_type not in WEIGHTED:
            todo.extend(i for i in n.input if i not in inits)
    return [n.name for n in g.node if id(n) in keep and n.name]


def prepare_for_cpu(model: onnx.ModelProto) -> list[str]:
    """Both float-graph rewrites (convolutions :func:`float_ends` keeps in float are not
    padded), then shape inference; returns the Max node names."""
    maxes = prelu_to_max(model)
    pad_conv_channels(model, skip=set(float_ends(model)))  # float convs need no padding
    if not any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
               for n in model.graph.node for a in n.attribute):  # no subgraphs: drop unused weights
        used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
        keep = [i for i in model.graph.initializer if i.name in used]
        del model.graph.initializer[:]
        model.graph.initializer.extend(keep)
    inferred = shape_inference.infer_shapes(model)
    model.CopyFrom(inferred)
    return maxes


def _qparams(inits: dict[str, onnx.TensorProto], node: onnx.NodeProto) -> tuple[float, int, int] | None:
    """(scale, zero point, zero-point dtype) of a per-tensor Q/DQ node with constant params."""
    if len(node.input) != 3 or node.input[1] not in inits or node.input[2] not in inits:
        return None
    s, z = numpy_helper.to_array(inits[node.input[1]]), numpy_helper.to_array(inits[node.input[2]])
    if s.size != 1 or z.size != 1:
        return None
    return float(s.reshape(-1)[0]), int(z.reshape(-1)[0]), int(inits[node.input[2]].data_type)


def integer_max(model: onnx.ModelProto, max_names: list[str] | set[str]) -> int:
    """In a QDQ model, run ``DQ(a), DQ(b) -> Max -> Q`` on the codes when all three share
    one scale and zero point; returns how many Max nodes were converted."""
    g, inits = model.graph, _initializers(model)
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    drop: set[int] = set()
    done = 0
    for n in g.node:
        if n.name not in max_names or len(n.input) != 2:
            continue
        dqs = [producer.get(i) for i in n.input]
        outs = consumers.get(n.output[0], [])
        if len(outs) != 1 or outs[0].op_type != "QuantizeLinear":
            continue
        q = outs[0]
        deq = [d for d in dqs if d is not None and d.op_type == "DequantizeLinear"]
        if len(deq) != 2:
            continue
        params = [_qparams(inits, x) for x in (*deq, q)]
        if params[0] is None or any(p != params[0] for p in params[1:]):
            continue
        n.input[0], n.input[1] = deq[0].input[0], deq[1].input[0]
        n.output[0] = q.output[0]
        drop.add(id(q))
        for d in deq:
            if len(consumers[d.output[0]]) == 1:
                drop.add(id(d))
        done += 1
    keep = [n for n in g.node if id(n) not in drop]
    del g.node[:]
    g.node.extend(keep)
    return done
